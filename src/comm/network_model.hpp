#pragma once
// The bandwidth formulas, written down once.
//
// nccl-tests conventions for a collective of `size` bytes on n ranks taking t seconds:
//   algbw = size / t;  busbw = algbw * factor, with factor
//     all-reduce 2(n-1)/n,  all-gather and reduce-scatter (n-1)/n,  broadcast 1,
//   where size is the buffer a rank ends up with (all-gather: the whole gathered buffer).
// Bytes a rank puts on the wire, counted for the ring algorithms those factors describe:
//   all-reduce 2(n-1)/n size, all-gather / reduce-scatter (n-1)/n size (all-gatherv: size minus the
//   block of the rank's ring successor, which it never forwards), broadcast size (pipelined chain;
//   the last rank of the chain sends nothing), send/recv the bytes sent.
// Alpha-beta network model (latency alpha seconds, bandwidth beta bytes/s per link):
//   ring all-reduce              2(n-1) alpha + 2(n-1)/n size / beta
//   ring all-gather(v)/r-scatter  (n-1) alpha +  (n-1)/n size / beta
//   binomial-tree broadcast      ceil(log2 n) (alpha + size / beta)
//   barrier (dissemination)      ceil(log2 n) alpha
//   send/recv                    alpha + size / beta
// and zero for a single rank.
#include <cstdint>
#include <string>
#include <vector>

namespace frugal {

class Schema;
class Config;

enum class Op : uint8_t { allreduce, allgather, allgatherv, reducescatter, broadcast, barrier, sendrecv };
const char* op_name(Op op);

struct Network {
  std::string name;
  double bandwidth_bytes_per_s = 0;
  double latency_s = 0;
};

// Built-in presets: datacenter (100 Gbit/s, 5 us) and wan (1 Gbit/s, 10 ms).
Network network_preset(const std::string& name);
double busbw_factor(Op op, int n);
int64_t wire_bytes(Op op, int64_t size, int n, int rank);
double modelled_time(Op op, int64_t size, int n, const Network& net);

void add_network_keys(Schema& schema);
std::vector<Network> networks_from(const Config& config);

}  // namespace frugal
