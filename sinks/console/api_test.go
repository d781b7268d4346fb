package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/detect"
)

const (
	viewerSecret   = "viewer-secret-0123456789"
	operatorSecret = "operator-secret-0123456789"
)

func testTokens(t *testing.T) *Tokens {
	t.Helper()
	tokens, err := LoadTokens(func(k string) string {
		if k == EnvTokens {
			return "vic:viewer:" + viewerSecret + ", olga:operator:" + operatorSecret
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func do(t *testing.T, h http.Handler, method, path, secret string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	body, _ := io.ReadAll(w.Result().Body)
	var v map[string]any
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
	return w.Code, v
}

// TestAuth: no state change without an operator token; no read without a
// token; the page itself needs none.
func TestAuth(t *testing.T) {
	c, assets := testFleet(3)
	c.Attach(&memSink{}, assets).Write(t.Context(), &detect.Output{Quarantine: []detect.QuarantineEvent{{ID: "rec1", Action: detect.ActionRecommend, Device: "plc-00001"}}})
	h := c.Handler(testTokens(t))
	for _, tc := range []struct {
		method, path, secret string
		want                 int
	}{
		{"GET", "/api/v1/devices", "", 401},
		{"GET", "/api/v1/devices", "wrong-secret-0123456789", 401},
		{"GET", "/api/v1/devices", viewerSecret, 200},
		{"GET", "/api/v1/devices/plc-00001", viewerSecret, 200},
		{"GET", "/api/v1/devices/nope", viewerSecret, 404},
		{"GET", "/api/v1/groups", viewerSecret, 200},
		{"GET", "/api/v1/alerts?q=severity>5", viewerSecret, 200},
		{"GET", "/api/v1/quarantine", viewerSecret, 200},
		{"GET", "/api/v1/rollouts", "", 401},
		{"GET", "/api/v1/rollouts", viewerSecret, 200},
		{"GET", "/api/v1/rollouts/plant-a/s7-1500", "", 401},
		{"GET", "/api/v1/rollouts/plant-a/s7-1500", viewerSecret, 404},
		{"POST", "/api/v1/quarantine/rec1/approve", "", 401},
		{"POST", "/api/v1/quarantine/rec1/approve", viewerSecret, 403},
		{"POST", "/api/v1/quarantine/rec1/approve", operatorSecret, 200},
		{"POST", "/api/v1/quarantine/rec1/approve", operatorSecret, 409},
		{"POST", "/api/v1/quarantine/rec1/explode", operatorSecret, 404},
		{"GET", "/", "", 200},
	} {
		if got, body := do(t, h, tc.method, tc.path, tc.secret); got != tc.want {
			t.Errorf("%s %s with %q: %d %v, want %d", tc.method, tc.path, tc.secret, got, body, tc.want)
		}
	}
	_, who := do(t, h, "GET", "/api/v1/whoami", operatorSecret)
	if who["name"] != "olga" || who["role"] != "operator" {
		t.Fatalf("whoami %v", who)
	}
	story, _ := c.Device("plc-00001")
	if story.Status != StatusQuarantined {
		t.Fatalf("approved through the API: %s", story.Status)
	}
	q := c.quarantineItems()
	if len(q) != 1 || q[0].Decision == nil || q[0].Decision.By != "olga" {
		t.Fatalf("queue %+v", q)
	}
}

func TestBadQueryIs400WithPosition(t *testing.T) {
	c, _ := testFleet(3)
	h := c.Handler(nil)
	code, body := do(t, h, "GET", "/api/v1/devices?q=site:a+AND+(fw<", "")
	if code != 400 || body["position"] != float64(15) || !strings.Contains(body["error"].(string), "position 15") {
		t.Fatalf("%d %v", code, body)
	}
	code, body = do(t, h, "GET", "/api/v1/alerts?q=colour:red", "")
	if code != 400 || body["position"] != float64(0) {
		t.Fatalf("%d %v", code, body)
	}
}

func TestServeRefusesOpenListenerWithoutTokens(t *testing.T) {
	c := New(Options{})
	if _, err := c.Serve("0.0.0.0:0", nil, nil); err == nil || !strings.Contains(err.Error(), "without tokens") {
		t.Fatalf("0.0.0.0 without tokens: %v", err)
	}
	s, err := c.Serve("0.0.0.0:0", testTokens(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = c.Serve("127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get("http://" + s.Addr() + "/api/v1/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("loopback without tokens: %d", resp.StatusCode)
	}
}

func TestLoadTokens(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"a:viewer", "want name:role:secret"},
		{"a:admin:0123456789abcdef", "the role of a is not"},
		{"a:viewer:short", "shorter than 16"},
	} {
		_, err := LoadTokens(func(k string) string {
			if k == EnvTokens {
				return tc.env
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "short") && !strings.Contains(tc.want, "shorter") {
			t.Errorf("%q: %v, want %q", tc.env, err, tc.want)
		}
	}
	dir := t.TempDir()
	path := dir + "/tokens"
	if err := writeTestFile(path, "# console tokens\nops:operator:"+operatorSecret+"\n\nbad line\n"); err != nil {
		t.Fatal(err)
	}
	_, err := LoadTokens(func(k string) string {
		if k == EnvTokensFile {
			return path
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "line 4") || strings.Contains(err.Error(), operatorSecret) {
		t.Fatalf("file error: %v", err)
	}
}

// FuzzTokens: no entry crashes the reader or has a secret quoted in an
// error.
func FuzzTokens(f *testing.F) {
	f.Add("a:viewer:0123456789abcdef\nb:operator:fedcba9876543210")
	f.Add("# x\n:viewer:")
	f.Add("a:root:0123456789abcdef0123")
	f.Fuzz(func(t *testing.T, s string) {
		var tk Tokens
		err := tk.read(strings.NewReader(s), "f")
		if err == nil {
			return
		}
		for _, line := range strings.Split(s, "\n") {
			_, rest, _ := strings.Cut(line, ":")
			_, secret, _ := strings.Cut(rest, ":")
			if len(secret) >= 8 && strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q quotes the secret %q", err, secret)
			}
		}
	})
}

func writeTestFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
