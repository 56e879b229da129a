  return number % 1.0;
}
