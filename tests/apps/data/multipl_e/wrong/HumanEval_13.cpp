    return a < b ? a : b;
