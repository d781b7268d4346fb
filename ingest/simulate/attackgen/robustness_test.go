package attackgen

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/vigil-ot/vigil/ingest/ot"
)

var robustnessStart = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

// TestModbusOnOTPorts checks each client port opens its connection with
// a handshake to 502 before any payload, then carries Modbus polls that
// decode as Modbus.
func TestModbusOnOTPorts(t *testing.T) {
	var buf bytes.Buffer
	if err := GenerateModbusOnOTPorts(&buf, robustnessStart, time.Minute); err != nil {
		t.Fatal(err)
	}
	type side struct{ syn, synAck bool }
	conns := map[layers.TCPPort]*side{2404: {}, 2222: {}}
	polls := map[layers.TCPPort]int{}
	for _, p := range decodeCapture(t, buf.Bytes()) {
		tc, ok := p.p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			t.Fatalf("packet %d is not TCP", p.n)
		}
		client, server := tc.SrcPort, tc.DstPort
		if tc.SrcPort == 502 {
			client, server = tc.DstPort, tc.SrcPort
		}
		c := conns[client]
		if c == nil || server != 502 {
			t.Fatalf("packet %d: %d -> %d", p.n, tc.SrcPort, tc.DstPort)
		}
		switch {
		case tc.SYN && !tc.ACK:
			c.syn = true
		case tc.SYN && tc.ACK:
			c.synAck = c.syn
		case len(tc.Payload) > 0:
			if !c.synAck {
				t.Fatalf("packet %d: payload before the handshake of client port %d", p.n, client)
			}
			var pdu ot.PDU
			if _, err := ot.Decode(ot.Modbus, tc.Payload, tc.SrcPort == 502, &pdu); err != nil || pdu.Malformed != "" || pdu.Function != 3 {
				t.Errorf("packet %d: Modbus function %d, malformed %q, err %v", p.n, pdu.Function, pdu.Malformed, err)
			}
			if tc.DstPort == 502 {
				polls[client]++
			}
		}
	}
	for port, c := range conns {
		if !c.synAck || polls[port] < 50 {
			t.Errorf("client port %d: handshake %+v, %d polls", port, *c, polls[port])
		}
	}
}

// TestCorruptTimestamp checks exactly the packet returned is out of
// order, 71 minutes late.
func TestCorruptTimestamp(t *testing.T) {
	var buf bytes.Buffer
	n, err := GenerateCorruptTimestamp(&buf, robustnessStart, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pkts := decodeCapture(t, buf.Bytes())
	if n < 100 || n > len(pkts)-100 {
		t.Fatalf("corrupt packet %d of %d: want one in the middle", n, len(pkts))
	}
	bad := pkts[n-1]
	if late := bad.t.Sub(pkts[n-2].t); late < 71*time.Minute || late > 71*time.Minute+time.Second {
		t.Errorf("packet %d is %v after the previous one; want 71 minutes", n, late)
	}
	prev := pkts[0].t
	for _, p := range pkts {
		if p.n == n {
			continue
		}
		if p.t.Before(prev) {
			t.Errorf("packet %d at %v goes back in time", p.n, p.t)
		}
		prev = p.t
	}
}
