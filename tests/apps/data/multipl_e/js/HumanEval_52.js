  return l.every((x) => x < t);
}
