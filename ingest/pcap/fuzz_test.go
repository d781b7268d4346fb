package pcap

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the capture reader: it must never
// panic, must end (io.EOF or an error), and every packet it returns must
// lie within the input.
func FuzzReader(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testdata, "*"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 8<<10 {
			f.Add(b)
		}
	}
	f.Add(pcapFile(binary.BigEndian, 0xa1b23c4d, 276, []byte{1, 2, 3}))
	f.Add(pcapFile(binary.LittleEndian, 0xa1b2cd34, 1, make([]byte, 20)))
	f.Add(pcapngFile([][2]int{{1, 6}, {101, 0x80 | 20}}, [][2]uint64{{0, 1}, {1, 1 << 40}}))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(pcapFile(binary.LittleEndian, 0xa1b2c3d4, 1, []byte{9, 9}))
	zw.Close()
	f.Add(z.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		var p Packet
		for i := 0; ; i++ {
			err := r.Next(&p)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if r.gz == nil && len(p.Data) > len(data) {
				t.Fatalf("packet of %d bytes from %d bytes of input", len(p.Data), len(data))
			}
			if i > len(data) && r.gz == nil {
				t.Fatalf("more packets (%d) than input bytes", i)
			}
		}
	})
}
