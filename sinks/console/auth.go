package console

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"strings"
)

// Roles of a token.
const (
	RoleViewer   = "viewer"   // reads everything
	RoleOperator = "operator" // reads, and decides quarantines
)

// Tokens are the bearer tokens the console accepts. The zero value (no
// token) accepts every request as the operator "local": allowed on a
// loopback listener only (see Serve).
type Tokens struct {
	list []token
}

type token struct {
	name, role string
	sum        [32]byte // sha256 of the secret: compared in constant time
}

// Environment variables the tokens come from.
const (
	EnvTokens     = "VIGIL_CONSOLE_TOKENS"      // entries separated by commas
	EnvTokensFile = "VIGIL_CONSOLE_TOKENS_FILE" // a file of entries, one a line, # comments
)

// LoadTokens reads the tokens from the environment: VIGIL_CONSOLE_TOKENS
// and the file VIGIL_CONSOLE_TOKENS_FILE names. An entry is
// "name:role:secret", role viewer or operator; the name is who a decision
// records. Errors never quote a secret.
func LoadTokens(getenv func(string) string) (*Tokens, error) {
	t := &Tokens{}
	if v := getenv(EnvTokens); v != "" {
		for i, e := range strings.Split(v, ",") {
			if err := t.add(e); err != nil {
				return nil, fmt.Errorf("cannot read %s entry %d: %w", EnvTokens, i+1, err)
			}
		}
	}
	if path := getenv(EnvTokensFile); path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", EnvTokensFile, err)
		}
		defer f.Close()
		if err := t.read(f, path); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *Tokens) read(r io.Reader, path string) error {
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		e := strings.TrimSpace(sc.Text())
		if e == "" || strings.HasPrefix(e, "#") {
			continue
		}
		if err := t.add(e); err != nil {
			return fmt.Errorf("cannot read %s line %d: %w", path, line, err)
		}
	}
	return sc.Err()
}

func (t *Tokens) add(entry string) error {
	name, rest, ok1 := strings.Cut(strings.TrimSpace(entry), ":")
	role, secret, ok2 := strings.Cut(rest, ":")
	switch {
	case !ok1 || !ok2 || name == "":
		return fmt.Errorf("want name:role:secret")
	case role != RoleViewer && role != RoleOperator:
		return fmt.Errorf("the role of %s is not %s or %s (entries are name:role:secret)", name, RoleViewer, RoleOperator)
	case len(secret) < 16:
		return fmt.Errorf("the secret of %s is shorter than 16 characters: generate one, e.g. openssl rand -hex 24", name)
	}
	t.list = append(t.list, token{name: name, role: role, sum: sha256.Sum256([]byte(secret))})
	return nil
}

// Len returns how many tokens there are.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.list)
}

// who returns the name and role of the bearer of secret, ok false when no
// token matches.
func (t *Tokens) who(secret string) (name, role string, ok bool) {
	sum := sha256.Sum256([]byte(secret))
	for _, k := range t.list {
		if subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1 {
			name, role, ok = k.name, k.role, true
		}
	}
	return name, role, ok
}
