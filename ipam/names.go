package ipam

import (
	"encoding/binary"
	"hash/fnv"
	"iter"
	"math/big"
	"math/rand" //nolint:staticcheck // v1 on purpose: Calico's block order comes from its generator.
	"net/netip"
	"strings"
)

var nameReplacer = strings.NewReplacer(".", "-", ":", "-", "/", "-")

// BlockName is the IPAMBlock name of a block, as Calico's
// names.CIDRToName: 192.168.0.192/26 → 192-168-0-192-26,
// fd00::40/122 → fd00--40-122.
func BlockName(cidr netip.Prefix) string { return nameReplacer.Replace(cidr.String()) }

// AffinityName is the BlockAffinity name of a node's claim on a block.
func AffinityName(node string, cidr netip.Prefix) string { return node + "-" + BlockName(cidr) }

// HandleName is the IPAMHandle name of a handle id.
func HandleName(handleID string) string { return strings.ToLower(handleID) }

// blockAffinity is an IPAMBlock's spec.affinity for a node: Calico's
// "virtual:load-balancer" for LoadBalancer addresses, else "host:<node>".
func blockAffinity(node string) string {
	if node == VirtualLoadBalancer {
		return "virtual:" + node
	}
	return "host:" + node
}

// blockLen is the number of addresses (ordinals) of a block.
func blockLen(cidr netip.Prefix) int { return 1 << (cidr.Addr().BitLen() - cidr.Bits()) }

// low64 is the last 64 bits of an address. Blocks are at most 2^12
// addresses and aligned, so ordinals only ever touch these bits.
func low64(a netip.Addr) uint64 {
	b := a.As16()
	return binary.BigEndian.Uint64(b[8:])
}

// ordinal is a's index in block, or false if a is outside it.
func ordinal(block netip.Prefix, a netip.Addr) (int, bool) {
	if !block.Contains(a) {
		return 0, false
	}
	return int(low64(a) - low64(block.Addr())), true
}

// addrAt is the address at ordinal ord of block.
func addrAt(block netip.Prefix, ord int) netip.Addr {
	b := block.Addr().As16()
	binary.BigEndian.PutUint64(b[8:], low64(block.Addr())+uint64(ord))
	a := netip.AddrFrom16(b)
	if block.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// blockOf is the block of a pool with block prefix length bits that holds a.
func blockOf(a netip.Addr, bits int) netip.Prefix {
	p, _ := a.Prefix(bits)
	return p
}

// numBlocks is how many blocks of prefix length bits a pool has (big:
// an IPv6 /48 has 2^74 blocks of /122).
func numBlocks(pool netip.Prefix, bits int) *big.Int {
	return new(big.Int).Lsh(big.NewInt(1), uint(bits-pool.Bits()))
}

// candidateBlocks walks every block of pool once, starting at an index
// drawn from a generator seeded with the FNV-32 hash of the node name and
// wrapping around: Calico's randomBlockGenerator, so a node picks the same
// blocks under petrel as under Calico and nodes rarely race for one.
func candidateBlocks(pool netip.Prefix, bits int, node string) iter.Seq[netip.Prefix] {
	return func(yield func(netip.Prefix) bool) {
		n := numBlocks(pool, bits)
		h := fnv.New32()
		h.Write([]byte(node))
		i := new(big.Int).Rand(rand.New(rand.NewSource(int64(h.Sum32()))), n)
		step := new(big.Int).Lsh(big.NewInt(1), uint(pool.Addr().BitLen()-bits))
		base := new(big.Int).SetBytes(pool.Addr().AsSlice())
		one := big.NewInt(1)
		for seen := new(big.Int); seen.Cmp(n) < 0; seen.Add(seen, one) {
			if i.Cmp(n) >= 0 {
				i.SetInt64(0)
			}
			off := new(big.Int).Mul(i, step)
			if !yield(netip.PrefixFrom(bigToAddr(off.Add(off, base), pool.Addr().Is4()), bits)) {
				return
			}
			i.Add(i, one)
		}
	}
}

func bigToAddr(v *big.Int, is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		v.FillBytes(b[:])
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	v.FillBytes(b[:])
	return netip.AddrFrom16(b)
}
