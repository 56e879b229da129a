    if (strings.empty()) return std::nullopt;
    std::string best = strings[0];
    for (const auto& s : strings)
        if (s.size() > best.size()) best = s;
    return best;
