package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
)

func certCommand() command {
	return command{
		name:    "cert",
		summary: "make a local CA (once) and a certificate for the given hosts, for HTTPS without a public CA",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			out := fs.String("o", "certs", "folder for ca.pem, ca-key.pem, cert.pem and key.pem")
			hosts := fs.String("hosts", "127.0.0.1,localhost", "names and addresses the certificate is for, comma-separated (wildcards like *.cdn.deepcast.test allowed)")
			return func(ctx context.Context, args []string) error {
				ca, leaf, made, err := tlsserve.LocalCA(*out, splitList(*hosts), time.Now())
				if err != nil {
					return err
				}
				if made {
					fmt.Fprintf(stdout, "made a local CA: %s (its key %s stays private)\n", ca, filepath.Join(*out, tlsserve.CAKeyFile))
				} else {
					fmt.Fprintf(stdout, "using the local CA %s\n", ca)
				}
				spki, err := spkiHash(leaf.Cert)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "certificate for %s: %s, key %s\n\n", *hosts, leaf.Cert, leaf.Key)
				fmt.Fprintf(stdout, "serve with:   -tls-listen ADDR -tls-cert %s -tls-key %s\n", leaf.Cert, leaf.Key)
				fmt.Fprintf(stdout, "trust the CA: curl --cacert %s …;  ffmpeg -ca_file %s …;  deepcast play -ca %s …\n", ca, ca, ca)
				fmt.Fprintf(stdout, "  system-wide (Debian): cp %s /usr/local/share/ca-certificates/deepcast.crt && update-ca-certificates\n", ca)
				fmt.Fprintf(stdout, "  Chromium, for this certificate only: --ignore-certificate-errors-spki-list=%s\n", spki)
				return nil
			}
		},
	}
}

// spkiHash is the base64 SHA-256 of a certificate file's public key, as
// Chromium's --ignore-certificate-errors-spki-list takes it.
func spkiHash(certFile string) (string, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return "", fmt.Errorf("%s: no PEM data", certFile)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", certFile, err)
	}
	return spkiOf(c), nil
}

func spkiOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
