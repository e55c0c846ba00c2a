# Turns results.jsonl (one result object per line, docs/reference.md) into a Markdown
# table. The lines are flat objects written by bench.h or the bench scripts,
# so a field is found by its quoted name; no JSON library is needed.
function field(name,    re, m) {
  re = "\"" name "\":(\"[^\"]*\"|[-0-9.eE+]+)"
  if (match($0, re)) {
    m = substr($0, RSTART + length(name) + 3, RLENGTH - length(name) - 3)
    gsub(/"/, "", m)
    return m
  }
  return ""
}
BEGIN {
  print "| bench | impl | metric | value | unit | runs | spread | vs | ratio |"
  print "|---|---|---|---:|---|---:|---:|---|---:|"
}
/^\{/ {
  v = field("value"); lo = field("min"); hi = field("max")
  spread = ""
  # Over more than 10 runs the figure is a percentile of samples (latency
  # distributions) whose min and max are the samples', not a spread.
  if (lo != "" && hi != "" && v + 0 != 0 && field("runs") + 0 <= 10) {
    s = (hi - lo) / v * 100
    if (s < 0) s = -s
    spread = sprintf("%.1f%%%s", s, s > 10 ? " (!)" : "")
  }
  b = field("bench")
  if (field("conns") != "") b = b " (c" field("conns") ")"
  printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", b,
    field("impl"), field("metric"), v, field("unit"), field("runs"), spread,
    field("ratio_vs"), field("ratio")
}
END {
  print ""
  print "Spread is (max - min) / median over the runs; (!) marks a spread over 10%."
  print "(cN) is the number of connections wrk kept open. Figures over more than"
  print "10 samples (latency percentiles) show no spread: their runs column counts samples."
}
