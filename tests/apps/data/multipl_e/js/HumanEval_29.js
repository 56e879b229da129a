  return strings.filter((s) => s.startsWith(prefix));
}
