package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestValidateChecksWhatRunOpens checks that 'vigil validate' fails, naming
// the setting and its line, for configs that load but that 'vigil run' or
// 'vigil replay' would then reject: files that are missing or do not
// parse, and for --run no input topics or a SASL secret missing from the
// environment. What run would accept, validate passes.
func TestValidateChecksWhatRunOpens(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("inventory.csv", "device,site,hw\nplc-1,plant-a,s7\n")
	write("no-device.csv", "name,site\nplc-1,plant-a\n")
	write("not-pem.pem", "hello\n")
	certPEM, keyPEM := selfSignedPEM(t)
	write("client.pem", certPEM)
	write("client-key.pem", keyPEM)
	const topics = "kafka:\n  telemetry_topics: [iot]\n"
	for _, tc := range []struct {
		name, config string
		run          bool
		want         string // "" for a config that passes
	}{
		{"good", "input:\n  inventory:\n    path: inventory.csv\n" + topics +
			"  tls: {enabled: true, ca_file: client.pem, cert_file: client.pem, key_file: client-key.pem}\n", true, ""},
		{"missing inventory", "input:\n  inventory:\n    path: missing.csv\n", false,
			"line 3: input.inventory.path: cannot open inventory"},
		{"bad inventory", "input:\n  inventory:\n    path: no-device.csv\n", false,
			`line 3: input.inventory.path: cannot load inventory`},
		{"missing CA", "kafka:\n  tls:\n    enabled: true\n    ca_file: ca.pem\n", false,
			"line 4: kafka.tls.ca_file: cannot use the CA bundle"},
		{"CA not PEM", "kafka:\n  tls:\n    enabled: true\n    ca_file: not-pem.pem\n", false,
			"not-pem.pem holds no PEM certificate"},
		{"key is not the certificate's", "kafka:\n  tls:\n    enabled: true\n    cert_file: client.pem\n    key_file: client.pem\n", false,
			"line 4: kafka.tls.cert_file: cannot load the client certificate"},
		{"syslog sink CA not PEM", "sinks:\n  - kind: syslog\n    syslog:\n      address: siem:6514\n      transport: tls\n      tls: {ca_file: not-pem.pem}\n", false,
			"line 6: sinks[0].syslog.tls.ca_file"},
		{"file sink without its folder", "sinks:\n  - kind: file\n    path: no/such/alerts.jsonl\n", false,
			"line 3: sinks[0].path: cannot write"},
		{"replay config", "input:\n  inventory:\n    path: inventory.csv\n", false, ""},
		{"replay config for run", "input:\n  inventory:\n    path: inventory.csv\n", true,
			"kafka: vigil run needs input topics"},
		{"SASL secret not in the environment", topics + "  sasl: {mechanism: plain, username: vigil, password_env: VIGIL_TEST_UNSET_PASSWORD}\n", true,
			"line 3: kafka.sasl: cannot read kafka sasl password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write("vigil.yaml", tc.config)
			_, err := loadConfig(path, func(c *Config) []error { return checkConfigFiles(c, tc.run) })
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("validate fails a config run accepts: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("validate passes; want an error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
			args := []string{path}
			if tc.run {
				args = []string{"--run", path}
			}
			if code := runValidate(args); (code == 0) != (tc.want == "") {
				t.Errorf("vigil validate %s exits %d", strings.Join(args, " "), code)
			}
		})
	}
}

// selfSignedPEM returns a certificate and its key, PEM-encoded.
func selfSignedPEM(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}
