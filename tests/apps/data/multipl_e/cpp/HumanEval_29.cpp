    std::vector<std::string> out;
    for (const auto& s : strings)
        if (s.compare(0, prefix.size(), prefix) == 0) out.push_back(s);
    return out;
