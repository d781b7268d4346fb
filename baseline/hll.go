package baseline

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// HLL is a HyperLogLog distinct-count sketch (Flajolet et al., with linear
// counting for small cardinalities): 2^precision one-byte registers, a
// relative standard error of 1.04/sqrt(2^precision), and an exact merge
// (register-wise maximum), so counts of distinct peers or ports from shards
// combine. Hashes are deterministic across processes (see HashString), so
// merged sketches agree. Add allocates nothing.
type HLL struct {
	p    uint8
	regs []uint8
}

// HLL precisions accepted by NewHLL.
const (
	MinHLLPrecision     = 4
	MaxHLLPrecision     = 16
	DefaultHLLPrecision = 12 // 4 KiB, 1.6 % standard error
)

// NewHLL returns an empty sketch with 2^precision registers; precision is
// clamped to [MinHLLPrecision, MaxHLLPrecision].
func NewHLL(precision uint8) *HLL {
	precision = min(max(precision, MinHLLPrecision), MaxHLLPrecision)
	return &HLL{p: precision, regs: make([]uint8, 1<<precision)}
}

// AddHash adds an element by its 64-bit hash (HashString, HashUint64).
func (h *HLL) AddHash(x uint64) {
	idx := x >> (64 - h.p)
	rho := uint8(bits.LeadingZeros64(x<<h.p|1<<(h.p-1))) + 1
	if rho > h.regs[idx] {
		h.regs[idx] = rho
	}
}

// AddString adds element s.
func (h *HLL) AddString(s string) { h.AddHash(HashString(s)) }

// AddUint64 adds element v.
func (h *HLL) AddUint64(v uint64) { h.AddHash(HashUint64(v)) }

// Merge folds o into h. Precisions must match.
func (h *HLL) Merge(o *HLL) error {
	if h.p != o.p {
		return fmt.Errorf("cannot merge HLL of precision %d into precision %d: build both with the same precision", o.p, h.p)
	}
	for i, r := range o.regs {
		if r > h.regs[i] {
			h.regs[i] = r
		}
	}
	return nil
}

// Estimate returns the estimated number of distinct elements added.
func (h *HLL) Estimate() float64 {
	m := float64(len(h.regs))
	var sum float64
	zeros := 0
	for _, r := range h.regs {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	var alpha float64
	switch len(h.regs) {
	case 16:
		alpha = 0.673
	case 32:
		alpha = 0.697
	case 64:
		alpha = 0.709
	default:
		alpha = 0.7213 / (1 + 1.079/m)
	}
	e := alpha * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		return m * math.Log(m/float64(zeros))
	}
	return e
}

// AppendBinary appends h's encoding (precision byte, then the registers).
func (h *HLL) AppendBinary(dst []byte) []byte {
	dst = append(dst, h.p)
	return append(dst, h.regs...)
}

// UnmarshalHLL decodes an encoding made by AppendBinary.
func UnmarshalHLL(data []byte) (*HLL, error) {
	if len(data) < 1 {
		return nil, errors.New("cannot decode HLL: empty input")
	}
	p := data[0]
	if p < MinHLLPrecision || p > MaxHLLPrecision {
		return nil, fmt.Errorf("cannot decode HLL: precision %d outside %d..%d", p, MinHLLPrecision, MaxHLLPrecision)
	}
	if len(data)-1 != 1<<p {
		return nil, fmt.Errorf("cannot decode HLL: %d register bytes for precision %d, want %d", len(data)-1, p, 1<<p)
	}
	h := NewHLL(p)
	for i, r := range data[1:] {
		if r > 64-p+1 {
			return nil, fmt.Errorf("cannot decode HLL: register %d holds %d, above the maximum %d", i, r, 64-p+1)
		}
		h.regs[i] = r
	}
	return h, nil
}

// HashString returns a deterministic 64-bit hash of s (FNV-1a, then the
// splitmix64 finalizer to spread FNV's weak high bits), stable across
// processes and versions, for HLL and CommSet keys.
func HashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

// HashUint64 returns a deterministic 64-bit hash of v.
func HashUint64(v uint64) uint64 { return mix64(v + 0x9e3779b97f4a7c15) }

// HashCombine hashes the pair (a, b) of hashes, for composite keys such as
// (peer, port, protocol).
func HashCombine(a, b uint64) uint64 { return mix64(a ^ (b + 0x9e3779b97f4a7c15 + a<<6 + a>>2)) }

// mix64 is the splitmix64 finalizer.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
