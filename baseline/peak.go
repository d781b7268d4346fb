package baseline

import "math"

// A group metric's peak memory: the largest value the group learned in the
// current and the previous epoch of the longest half-life (a week by
// default), so Expectation.GroupPeak covers the last one to two of them.
// The decayed moments and the day-long quantile sketches forget a burst
// that comes once a week (a weekly self-test's error count) by the time it
// comes again; the peak remembers that the group has had it, and what the
// detectors make of that is theirs (detect: a recurring burst). A peak is
// a maximum of learned values only, so what alarmed and was kept from the
// baselines never enters it, and peaks of instances merge by max.
type peakMemory struct {
	epoch int64      // the epoch of peak[0]: event time / longest half-life
	peak  [2]float64 // the maxima of epoch and epoch-1
	set   uint8      // bit i: peak[i] holds a value
}

// epochOf returns the peak epoch of event time t (ns).
func (s *Store) epochOf(t int64) int64 {
	w := s.hl[s.longest]
	e := t / w
	if t%w < 0 {
		e-- // floor, for times before 1970
	}
	return e
}

// roll moves the memory forward to epoch: the current maximum becomes the
// previous one, or both are forgotten after more than one epoch.
func (p *peakMemory) roll(epoch int64) {
	switch d := epoch - p.epoch; {
	case p.set == 0:
		p.epoch = epoch
	case d <= 0:
	case d == 1:
		p.peak[1], p.peak[0] = p.peak[0], 0
		p.set = (p.set & 1) << 1
		p.epoch = epoch
	default:
		*p = peakMemory{epoch: epoch}
	}
}

// learn folds a learned value x of the given epoch.
func (p *peakMemory) learn(x float64, epoch int64) {
	p.roll(epoch)
	i := int(p.epoch - epoch) // 0 or 1 for the epochs kept; older values are gone already
	if i < 0 || i > 1 {
		return
	}
	if p.set&(1<<i) == 0 || x > p.peak[i] {
		p.peak[i] = x
		p.set |= 1 << i
	}
}

// at returns the largest value learned in epoch and the one before it, or
// NaN when there is none.
func (p *peakMemory) at(epoch int64) float64 {
	out := math.NaN()
	for i := range 2 {
		if p.set&(1<<i) != 0 && p.epoch-int64(i) >= epoch-1 && p.epoch-int64(i) <= epoch && !(p.peak[i] <= out) {
			out = p.peak[i]
		}
	}
	return out
}

// merge folds o in: both are brought to the later epoch, then the maxima
// of each epoch combine.
func (p *peakMemory) merge(o *peakMemory) {
	if o.set == 0 {
		return
	}
	oc := *o
	e := max(p.epoch, oc.epoch)
	if p.set == 0 {
		e = oc.epoch
	}
	p.roll(e)
	oc.roll(e)
	for i := range 2 {
		if oc.set&(1<<i) != 0 {
			if p.set&(1<<i) == 0 || oc.peak[i] > p.peak[i] {
				p.peak[i] = oc.peak[i]
			}
			p.set |= 1 << i
		}
	}
}
