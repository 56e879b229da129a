  return Math.min(a, b);
}
