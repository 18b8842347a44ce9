package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/deepcast/deepcast/edge/auth"
)

func tokenCommand() command {
	return command{
		name:    "token",
		summary: "make an access-token key, or mint a Common Access Token (or a secure_link link) for viewers",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			newKey := fs.String("new-key", "", "write a fresh key to FILE (refuses to overwrite) and stop")
			alg := fs.String("alg", "HS256", "-new-key's algorithm: HS256 or ES256")
			kid := fs.String("kid", "", "-new-key: the key id (default: random); minting: the key of -key to use (default: the first)")
			keyFile := fs.String("key", "", "key file to mint with (as -new-key writes it; with -securelink, the secret)")
			uri := fs.String("uri", "", "what the token opens: a path prefix such as /vod/NAME/ (required); with -securelink, the exact path")
			ttl := fs.Duration("ttl", 2*time.Hour, "the token's lifetime")
			renew := fs.Duration("renew", 0, "renew the token in its last RENEW (a catr claim; the edge sends a fresh one, the viewer keeps playing)")
			renewType := fs.String("renew-type", "automatic", "how a renewed token travels: automatic (as it came), cookie, header or redirect")
			issuer := fs.String("issuer", "", "the iss claim (edges with -auth-issuer want theirs)")
			audience := fs.String("audience", "", "the aud claim: edge names, comma-separated")
			methods := fs.String("methods", "", "the catm claim: allowed methods, comma-separated (default: any)")
			once := fs.Bool("once", false, "a single-use token (catreplay 1)")
			secureLink := fs.Bool("securelink", false, "print an nginx secure_link query (md5=…&expires=…) instead of a CAT")
			remote := fs.String("remote", "", "-securelink: the viewer's address ($remote_addr)")
			expr := fs.String("securelink-md5", auth.DefaultSecureLinkMD5, "-securelink: the hashed expression, as the edge's -auth-securelink-md5")
			return func(_ context.Context, args []string) error {
				if *newKey != "" {
					return writeNewKey(*newKey, *kid, *alg)
				}
				if *keyFile == "" || *uri == "" {
					return fmt.Errorf("-key FILE and -uri PREFIX are needed to mint (or -new-key FILE to make a key): %w", errUsage)
				}
				if *ttl <= 0 {
					return fmt.Errorf("-ttl %s: want a positive duration: %w", *ttl, errUsage)
				}
				if !strings.HasPrefix(*uri, "/") {
					return fmt.Errorf("-uri %q: want a path from the root, such as /vod/NAME/: %w", *uri, errUsage)
				}
				if *secureLink {
					b, err := os.ReadFile(*keyFile)
					if err != nil {
						return fmt.Errorf("secure link secret: %w", err)
					}
					s, err := auth.NewSecureLink(*expr, strings.TrimRight(string(b), "\r\n"), nil)
					if err != nil {
						return err
					}
					fmt.Fprintln(stdout, *uri+"?"+s.Link(*uri, *remote, time.Now().Add(*ttl)))
					return nil
				}
				keys, err := auth.LoadKeys(*keyFile)
				if err != nil {
					return err
				}
				key := keys[0]
				if *kid != "" {
					key = nil
					for _, k := range keys {
						if k.ID == *kid {
							key = k
						}
					}
					if key == nil {
						return fmt.Errorf("no key %q in %s", *kid, *keyFile)
					}
				}
				rt, ok := map[string]int{"automatic": auth.RenewAutomatic, "cookie": auth.RenewCookie, "header": auth.RenewHeader, "redirect": auth.RenewRedirect}[*renewType]
				if !ok {
					return fmt.Errorf("-renew-type %q: want automatic, cookie, header or redirect: %w", *renewType, errUsage)
				}
				if *renew < 0 || *renew >= *ttl {
					return fmt.Errorf("-renew %s: want less than -ttl %s: %w", *renew, *ttl, errUsage)
				}
				spec := auth.TokenSpec{Issuer: *issuer, Audience: splitList(*audience), Expires: time.Now().Add(*ttl),
					PathPrefix: *uri, Methods: splitList(*methods), Renew: *renew, RenewType: rt}
				if *once {
					spec.Replay = 1
				}
				tok, err := auth.Mint(key, spec)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "token for %s, key %q, expires %s\n", *uri, key.ID, spec.Expires.UTC().Format(time.RFC3339))
				fmt.Fprintln(stdout, tok)
				return nil
			}
		},
	}
}

// writeNewKey writes a fresh key file, readable by its owner only; it
// never overwrites one (a lost key locks every viewer out).
func writeNewKey(path, kid, alg string) error {
	k, err := auth.NewKey(kid, alg)
	if err != nil {
		return fmt.Errorf("%w: %w", err, errUsage)
	}
	b, err := auth.MarshalKeys(k)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: a key file is never overwritten", path)
		}
		return fmt.Errorf("key file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("key file %s: %w", path, err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s key %q to %s\n", alg, k.ID, path)
	return nil
}
