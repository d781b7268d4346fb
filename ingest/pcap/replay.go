package pcap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Replay reads several captures as one stream in time order: a k-way heap
// merge on the head packet of each file. Ties go to the earlier file, then
// the earlier packet, so a replay is deterministic. Packets within one file
// keep their file order even when their timestamps go backwards.
//
// Not safe for concurrent use, except BytesRead and TotalBytes.
type Replay struct {
	readers []*Reader
	heads   []Packet
	h       replayHeap
	started bool
	total   int64
	warns   []Warning // files skipped while expanding
}

// OpenReplay expands args (files, directories walked recursively, and
// globs) and opens every capture found. A file named explicitly must be a
// capture; files found in a directory or by a glob that are not captures
// (READMEs, inventories) are skipped with a warning.
func OpenReplay(args ...string) (*Replay, error) {
	rp := &Replay{}
	for _, arg := range args {
		paths, explicit, err := expand(arg)
		if err != nil {
			rp.Close()
			return nil, err
		}
		for _, p := range paths {
			r, err := Open(p)
			if err != nil {
				if !explicit && errors.Is(err, ErrNotCapture) {
					rp.warns = append(rp.warns, Warning{File: p, Reason: "not a capture (skipped)"})
					continue
				}
				rp.Close()
				return nil, err
			}
			if st, err := os.Stat(p); err == nil {
				rp.total += st.Size()
			}
			rp.readers = append(rp.readers, r)
		}
	}
	if len(rp.readers) == 0 {
		return nil, fmt.Errorf("cannot open replay: no capture found in %s; name pcap/pcapng files, directories or globs", strings.Join(args, " "))
	}
	return rp, nil
}

func expand(arg string) (paths []string, explicit bool, err error) {
	st, statErr := os.Stat(arg)
	switch {
	case statErr == nil && st.IsDir():
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				paths = append(paths, p)
			}
			return nil
		})
		if err != nil {
			return nil, false, fmt.Errorf("cannot walk capture directory %s: %w", arg, err)
		}
		sort.Strings(paths)
		return paths, false, nil
	case statErr == nil:
		return []string{arg}, true, nil
	}
	matches, gerr := filepath.Glob(arg)
	if gerr != nil || len(matches) == 0 {
		return nil, false, fmt.Errorf("cannot open capture %s: %w", arg, statErr)
	}
	sort.Strings(matches)
	for _, m := range matches {
		sub, _, err := expand(m)
		if err != nil {
			return nil, false, err
		}
		paths = append(paths, sub...)
	}
	return paths, false, nil
}

// Files returns the readers in file order; Packet.File indexes it.
func (rp *Replay) Files() []*Reader { return rp.readers }

// Warnings returns the warnings of every file so far.
func (rp *Replay) Warnings() []Warning {
	out := append([]Warning(nil), rp.warns...)
	for _, r := range rp.readers {
		out = append(out, r.Warnings()...)
	}
	return out
}

// BytesRead returns the bytes consumed from all files; safe to call from
// another goroutine.
func (rp *Replay) BytesRead() int64 {
	var n int64
	for _, r := range rp.readers {
		n += r.BytesRead()
	}
	return n
}

// TotalBytes returns the summed size of the files (0 when unknown, for
// readers not opened from a path).
func (rp *Replay) TotalBytes() int64 { return rp.total }

// Next returns the earliest pending packet. p.Data stays valid until the
// next call. io.EOF means every file is exhausted.
func (rp *Replay) Next(p *Packet) error {
	if !rp.started {
		rp.started = true
		rp.heads = make([]Packet, len(rp.readers))
		for i := range rp.readers {
			if err := rp.advance(i); err != nil {
				return err
			}
		}
	} else if rp.h.last >= 0 {
		// The packet returned last time is consumed now, so its reader's
		// buffer may be reused.
		if err := rp.advance(rp.h.last); err != nil {
			return err
		}
	}
	if len(rp.h.idx) == 0 {
		rp.h.last = -1
		return io.EOF
	}
	i := rp.h.pop()
	*p = rp.heads[i]
	rp.h.last = i
	return nil
}

// advance reads the next packet of file i into its head slot and pushes it.
func (rp *Replay) advance(i int) error {
	err := rp.readers[i].Next(&rp.heads[i])
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	rp.heads[i].File = i
	rp.h.heads = rp.heads
	rp.h.push(i)
	return nil
}

// Close closes every file.
func (rp *Replay) Close() error {
	var first error
	for _, r := range rp.readers {
		if err := r.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// replayHeap is a min-heap of file indices ordered by their head packet.
// Hand-written rather than container/heap so pushing an index never boxes.
type replayHeap struct {
	idx   []int
	heads []Packet
	last  int // file whose packet was returned last, -1 when none
}

func (h *replayHeap) less(a, b int) bool {
	pa, pb := &h.heads[h.idx[a]], &h.heads[h.idx[b]]
	if pa.TimeNanos != pb.TimeNanos {
		return pa.TimeNanos < pb.TimeNanos
	}
	return pa.File < pb.File
}

func (h *replayHeap) push(i int) {
	h.idx = append(h.idx, i)
	for j := len(h.idx) - 1; j > 0; {
		parent := (j - 1) / 2
		if !h.less(j, parent) {
			break
		}
		h.idx[j], h.idx[parent] = h.idx[parent], h.idx[j]
		j = parent
	}
}

func (h *replayHeap) pop() int {
	top := h.idx[0]
	n := len(h.idx) - 1
	h.idx[0] = h.idx[n]
	h.idx = h.idx[:n]
	for j := 0; ; {
		l, m := 2*j+1, j
		if l < n && h.less(l, m) {
			m = l
		}
		if r := l + 1; r < n && h.less(r, m) {
			m = r
		}
		if m == j {
			break
		}
		h.idx[j], h.idx[m] = h.idx[m], h.idx[j]
		j = m
	}
	return top
}
