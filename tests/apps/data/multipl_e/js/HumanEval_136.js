  const neg = lst.filter((x) => x < 0), pos = lst.filter((x) => x > 0);
  return [neg.length ? Math.max(...neg) : undefined, pos.length ? Math.min(...pos) : undefined];
}
