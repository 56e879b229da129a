  const count = {};
  let best = 0;
  for (const w of test.split(' ')) {
    if (w === '') continue;
    count[w] = (count[w] || 0) + 1;
    best = Math.max(best, count[w]);
  }
  const out = {};
  for (const k of Object.keys(count)) if (count[k] === best) out[k] = best;
  return out;
}
