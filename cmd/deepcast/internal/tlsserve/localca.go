package tlsserve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/atomicfile"
)

// Files of a local CA folder (deepcast cert -o DIR).
const (
	CAFile      = "ca.pem"
	CAKeyFile   = "ca-key.pem"
	LeafFile    = "cert.pem"
	LeafKeyFile = "key.pem"
)

// checkHosts trims hosts and drops repeats, and refuses what no client
// would match a certificate to: a name that is not a host name (a space,
// an empty label, "300.1.1.1"), or a wildcard anywhere but as the whole
// first label of a name with two more labels (*.cdn.example). It refuses
// before anything is written, where a bad name used to yield a
// certificate that every client then rejected.
func checkHosts(hosts []string) ([]string, error) {
	var out []string
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" || slices.Contains(out, h) {
			continue
		}
		if net.ParseIP(h) == nil {
			if err := checkHostName(h); err != nil {
				return nil, fmt.Errorf("cert: host %q: %w", h, err)
			}
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, errors.New("cert: give at least one host (-hosts 127.0.0.1,localhost)")
	}
	return out, nil
}

// checkHostName checks a DNS name for a certificate: labels of letters,
// digits, '-' and '_' (1 to 63 bytes, no '-' at either end), 253 bytes
// in all, a last label that is not all digits (that would be an IP
// address misspelt), and "*" only as the whole first label.
func checkHostName(h string) error {
	if len(h) > 253 {
		return errors.New("longer than 253 bytes")
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	for i, l := range labels {
		if l == "*" && i == 0 {
			if len(labels) < 3 {
				return errors.New("a wildcard needs two labels after it (*.cdn.example): clients refuse it over a single label")
			}
			continue
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q: want 1 to 63 letters, digits, '-' or '_', not starting or ending with '-'", l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				if c == '*' {
					return errors.New("a wildcard is only allowed as the whole first label (*.cdn.example)")
				}
				return fmt.Errorf("label %q: %q is not allowed in a host name", l, c)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return errors.New("not an IP address, and a host name does not end in a number")
	}
	return nil
}

// LocalCA makes, once, a certificate authority of its own in dir (ECDSA
// P-256, ten years) and, each time, a leaf certificate for hosts (names,
// wildcards, IP addresses; ECDSA P-256, about a year) signed by it, as
// mkcert does. It returns the paths of the CA and of the leaf pair, and
// whether the CA was made now.
func LocalCA(dir string, hosts []string, now time.Time) (ca string, leaf Pair, made bool, err error) {
	hosts, err = checkHosts(hosts)
	if err != nil {
		return "", Pair{}, false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", Pair{}, false, fmt.Errorf("cert: %w", err)
	}
	ca, caKeyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	caCert, caKey, err := readCA(ca, caKeyPath)
	if errors.Is(err, os.ErrNotExist) {
		caCert, caKey, err = newCA(ca, caKeyPath, now)
		made = true
	}
	if err != nil {
		return "", Pair{}, false, err
	}
	leaf = Pair{Cert: filepath.Join(dir, LeafFile), Key: filepath.Join(dir, LeafKeyFile)}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", Pair{}, false, fmt.Errorf("cert: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"deepcast local CA"}, CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 1, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", Pair{}, false, fmt.Errorf("cert: %w", err)
	}
	if err := writePEM(leaf.Key, "EC PRIVATE KEY", mustMarshalEC(key), 0o600); err != nil {
		return "", Pair{}, false, err
	}
	if err := writePEM(leaf.Cert, "CERTIFICATE", der, 0o644); err != nil {
		return "", Pair{}, false, err
	}
	return ca, leaf, made, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func mustMarshalEC(k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return b
}

func newCA(certPath, keyPath string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cert: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"deepcast local CA"}, CommonName: "deepcast local CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("cert: %w", err)
	}
	if err := writePEM(keyPath, "EC PRIVATE KEY", mustMarshalEC(key), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func readCA(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cert: %s exists but its key: %w", certPath, err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("cert: %s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cert: %s: %w", certPath, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cert: %s: %w", keyPath, err)
	}
	return cert, key, nil
}

// writePEM writes one PEM block atomically (temporary file, then rename),
// so a server watching the file never reads half of it.
func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), mode); err != nil {
		return fmt.Errorf("cert: %w", err)
	}
	return nil
}
