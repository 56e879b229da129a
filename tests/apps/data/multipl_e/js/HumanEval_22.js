  return values.filter((v) => Number.isInteger(v));
}
