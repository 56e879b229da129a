    long even = 0, odd = 0;
    for (long i = 1; i <= n; ++i) {
        std::string s = std::to_string(i);
        if (std::equal(s.begin(), s.end(), s.rbegin())) {
            if (i % 2 == 0) ++even; else ++odd;
        }
    }
    return std::make_tuple(even, odd);
