package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vigil-ot/vigil/ingest/pcap"
)

// readHead returns the first n bytes of the file at path, or fewer when it
// is shorter, decompressed when the file is gzip. Its only errors are a
// file that cannot be opened and a gzip header that cannot be read.
func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read input: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("cannot read gzip input %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	head := make([]byte, n)
	m, _ := io.ReadFull(r, head) // a short or damaged file is judged by what it has
	return head[:m], nil
}

// checkInput explains why the file at path cannot be replayed, before a
// single line or packet of it is read: it is empty, a git-lfs pointer
// instead of the file, a capture in a format Vigil does not read, binary
// data that is no capture, or a capture of which not one packet can be
// read. capture says its first bytes are a pcap or pcapng magic number.
// Anything else is nil: damage further in is counted as the input is read.
func checkInput(path string, capture bool) error {
	head, err := readHead(path, 512)
	if err != nil {
		return err
	}
	if len(head) == 0 {
		return fmt.Errorf("cannot replay %s: it is empty", path)
	}
	if bytes.HasPrefix(head, []byte("version https://git-lfs")) {
		return fmt.Errorf("cannot replay %s: it is a git-lfs pointer, not the file it stands for; fetch the file with 'git lfs pull'", path)
	}
	if capture {
		return checkFirstPacket(path)
	}
	if f, _ := pcap.Sniff(head); f != pcap.FormatUnknown {
		return fmt.Errorf("cannot replay %s: it is a %s capture, which Vigil does not read; convert it to pcapng with 'editcap -F pcapng %s out.pcapng'", path, f, path)
	}
	if isBinary(head) {
		return fmt.Errorf("cannot replay %s: it is neither a pcap/pcapng capture nor text telemetry (binary data starting % x)", path, head[:min(len(head), 8)])
	}
	return nil
}

// checkFirstPacket fails for a capture with no packet or whose first
// packet cannot be read: a replay of it would judge nothing.
func checkFirstPacket(path string) error {
	r, err := pcap.Open(path)
	if err != nil {
		return fmt.Errorf("cannot replay %s: %w", path, err)
	}
	defer r.Close()
	var p pcap.Packet
	switch err := r.Next(&p); {
	case err == nil:
		return nil
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("cannot replay %s: %w", path, err)
	case len(r.Warnings()) > 0:
		return fmt.Errorf("cannot replay %s: not one packet can be read: %s", path, r.Warnings()[0].Reason)
	}
	return fmt.Errorf("cannot replay %s: the capture holds no packets", path)
}

// isBinary tells data from text by its first bytes: text telemetry (JSON
// lines, CSV) has no NUL and next to no other control characters.
func isBinary(head []byte) bool {
	controls := 0
	for _, b := range head {
		switch {
		case b == 0:
			return true
		case b < 0x20 && !bytes.ContainsRune([]byte("\t\n\v\f\r\x1b"), rune(b)), b == 0x7f:
			controls++
		}
	}
	return controls*32 > len(head)
}
