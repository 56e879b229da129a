    std::optional<long> neg, pos;
    for (long x : lst) {
        if (x < 0 && (!neg || x > *neg)) neg = x;
        if (x > 0 && (!pos || x < *pos)) pos = x;
    }
    return std::make_tuple(neg, pos);
