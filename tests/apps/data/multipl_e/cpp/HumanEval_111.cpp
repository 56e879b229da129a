    std::map<std::string, long> count;
    std::istringstream in(test);
    std::string w;
    long best = 0;
    while (in >> w) best = std::max(best, ++count[w]);
    std::map<std::string, long> out;
    for (const auto& [k, v] : count)
        if (v == best) out[k] = v;
    return out;
