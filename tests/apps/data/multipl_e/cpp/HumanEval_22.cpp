    std::vector<long> out;
    for (const auto& v : values)
        if (v.type() == typeid(long)) out.push_back(std::any_cast<long>(v));
    return out;
