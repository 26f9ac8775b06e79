#include "comm/network_model.hpp"

#include <cmath>
#include <sstream>

#include "core/config.hpp"
#include "core/error.hpp"

namespace frugal {

const char* op_name(Op op) {
  switch (op) {
    case Op::allreduce: return "allreduce";
    case Op::allgather: return "allgather";
    case Op::allgatherv: return "allgatherv";
    case Op::reducescatter: return "reducescatter";
    case Op::broadcast: return "broadcast";
    case Op::barrier: return "barrier";
    case Op::sendrecv: return "sendrecv";
  }
  return "?";
}

Network network_preset(const std::string& name) {
  if (name == "datacenter") return {name, 100e9 / 8, 5e-6};
  if (name == "wan") return {name, 1e9 / 8, 10e-3};
  fail("unknown network preset '", name, "' (known: datacenter, wan; or set network.custom_gbps)");
}

double busbw_factor(Op op, int n) {
  if (n <= 1) return 0.0;
  switch (op) {
    case Op::allreduce: return 2.0 * (n - 1) / n;
    case Op::allgather:
    case Op::allgatherv:
    case Op::reducescatter: return double(n - 1) / n;
    case Op::broadcast:
    case Op::sendrecv: return 1.0;
    case Op::barrier: return 0.0;
  }
  return 0.0;
}

int64_t wire_bytes(Op op, int64_t size, int n, int rank) {
  if (n <= 1) return 0;
  switch (op) {
    case Op::allreduce: return 2 * (n - 1) * size / n;
    case Op::allgather:
    case Op::reducescatter: return (n - 1) * size / n;
    case Op::broadcast: return rank == n - 1 ? 0 : size;
    case Op::sendrecv: return size;
    case Op::allgatherv:  // handled by the caller, who knows the block sizes
    case Op::barrier: return 0;
  }
  return 0;
}

double modelled_time(Op op, int64_t size, int n, const Network& net) {
  if (n <= 1) return 0.0;
  const double s = static_cast<double>(size), a = net.latency_s, b = net.bandwidth_bytes_per_s;
  const double log2n = std::ceil(std::log2(static_cast<double>(n)));
  switch (op) {
    case Op::allreduce: return 2.0 * (n - 1) * a + 2.0 * (n - 1) / n * s / b;
    case Op::allgather:
    case Op::allgatherv:
    case Op::reducescatter: return (n - 1) * a + double(n - 1) / n * s / b;
    case Op::broadcast: return log2n * (a + s / b);
    case Op::barrier: return log2n * a;
    case Op::sendrecv: return a + s / b;
  }
  return 0.0;
}

void add_network_keys(Schema& s) {
  s.add("network.presets", std::string("datacenter,wan"),
        "modelled networks, comma separated: datacenter (100 Gbit/s, 5 us), wan (1 Gbit/s, 10 ms)");
  s.add("network.custom_gbps", 0.0, "add a network named 'custom' with this bandwidth in Gbit/s (0 = none)", 0.0, 1e6);
  s.add("network.custom_latency_us", 0.0, "latency of the 'custom' network in microseconds", 0.0, 1e9);
}

std::vector<Network> networks_from(const Config& cfg) {
  std::vector<Network> nets;
  std::stringstream ss(cfg.str("network.presets"));
  std::string name;
  while (std::getline(ss, name, ','))
    if (!name.empty()) nets.push_back(network_preset(name));
  if (cfg.real("network.custom_gbps") > 0)
    nets.push_back({"custom", cfg.real("network.custom_gbps") * 1e9 / 8, cfg.real("network.custom_latency_us") * 1e-6});
  return nets;
}

}  // namespace frugal
