    for (long x : l)
        if (x >= t) return false;
    return true;
