package pcap

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/ingest/pcap/pcaptest"
)

// TestSharedCapturesMatchInventory reads every real capture and compares
// the packet count and link types with INVENTORY.tsv, which was made with
// independent tools.
func TestSharedCapturesMatchInventory(t *testing.T) {
	dir := pcaptest.Require(t)
	f, err := os.Open(filepath.Join(dir, "INVENTORY.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	files := 0
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 8 {
			continue
		}
		wantPackets, _ := strconv.Atoi(cols[2])
		path := cols[7]
		files++
		r, err := Open(filepath.Join(dir, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		wantFormat := FormatPcap
		if cols[0] == "pcapng" {
			wantFormat = FormatPcapNG
		}
		if r.Format() != wantFormat {
			t.Errorf("%s: format %v, inventory says %s", path, r.Format(), cols[0])
		}
		links := map[uint16]bool{}
		n := 0
		var p Packet
		for {
			err := r.Next(&p)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			links[p.LinkType] = true
			n++
		}
		r.Close()
		switch {
		case strings.HasSuffix(path, "test202.pcapng"):
			// Three sections of both byte orders; the inventory tool stopped
			// after the first. capinfos and tshark count 8.
			wantPackets = 8
		case strings.HasSuffix(path, "melsoft_129_clean.pcap"):
			// The last record is cut short: it is dropped with a warning.
			wantPackets--
			if len(r.Warnings()) != 1 || r.Warnings()[0].Offset != 331665 {
				t.Errorf("%s: warnings %v, want one at byte 331665", path, r.Warnings())
			}
		}
		if n != wantPackets {
			t.Errorf("%s: %d packets, inventory says %d (warnings %v)", path, n, wantPackets, r.Warnings())
		}
		for _, lt := range strings.Split(cols[1], ",") {
			if lt == "" {
				continue
			}
			num, _ := strconv.Atoi(strings.SplitN(lt, ":", 2)[0])
			if n > 0 && !links[uint16(num)] && !strings.Contains(cols[1], ",") {
				t.Errorf("%s: link types %v, inventory says %s", path, links, cols[1])
			}
		}
	}
	if files < 100 {
		t.Fatalf("only %d captures listed", files)
	}
}
