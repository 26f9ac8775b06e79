#pragma once
// Human-readable quantities for console lines and tables: one formatting for the whole suite.
#include <cmath>
#include <cstdio>
#include <string>

namespace frugal {

// 3 significant digits with an SI prefix (decimal, as network bandwidths are quoted):
// si(1.5e9, "B") = "1.5 GB", si(2e12, "") = "2 T".
inline std::string si(double value, const char* unit) {
  const char* prefix[] = {"", "k", "M", "G", "T", "P"};
  int u = 0;
  while (std::fabs(value) >= 1000 && u < 5) value /= 1000, u++;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g %s%s", value, prefix[u], unit);
  return buf;
}

// Seconds in the unit that suits them: "850 us", "12.3 ms", "4.2 s".
inline std::string seconds(double s) {
  char buf[32];
  if (s < 1e-3) std::snprintf(buf, sizeof buf, "%.3g us", s * 1e6);
  else if (s < 1) std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.3g s", s);
  return buf;
}

}  // namespace frugal
