package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/deepcast/deepcast/edge/auth"
)

// authFlags are an edge's access-token flags.
type authFlags struct {
	mode, keyFile, issuer, audience, secureLinkMD5, cookiePath *string
}

func addAuthFlags(fs *flag.FlagSet) authFlags {
	return authFlags{
		mode:     fs.String("auth", "off", "access tokens on /vod/: off, cat (CTA-5007 Common Access Token) or securelink (nginx secure_link_md5 links)"),
		keyFile:  fs.String("auth-key", "", "cat: key file, one or more COSE keys (HS256, ES256; see `deepcast token -new-key`); securelink: a file holding the secret"),
		issuer:   fs.String("auth-issuer", "", "cat: the issuer (iss) tokens must name; any when empty"),
		audience: fs.String("auth-audience", "", "cat: names this edge answers to (comma-separated); a token's aud must hold one, and a token with an aud is refused when empty"),
		secureLinkMD5: fs.String("auth-securelink-md5", auth.DefaultSecureLinkMD5,
			"securelink: the hashed expression, as nginx's secure_link_md5 ($secure_link_expires, $uri, $remote_addr, $host, $arg_NAME; $secret is the key file's secret)"),
		cookiePath: fs.String("auth-cookie-path", "asset", "cat: the session cookie set for a token given in the URL covers the asset's folder (asset) or all of /vod/ (vod)"),
	}
}

// checker builds the token checker the flags ask for; nil when off.
func (f authFlags) checker() (auth.Checker, error) {
	switch *f.mode {
	case "off", "":
		if *f.keyFile != "" {
			return nil, fmt.Errorf("-auth-key without -auth cat or -auth securelink: %w", errUsage)
		}
		return nil, nil
	case "cat":
		if *f.keyFile == "" {
			return nil, fmt.Errorf("-auth cat needs -auth-key FILE (make one with `deepcast token -new-key FILE`): %w", errUsage)
		}
		keys, err := auth.LoadKeys(*f.keyFile)
		if err != nil {
			return nil, err
		}
		return auth.NewCAT(auth.CATConfig{Keys: keys, Issuer: *f.issuer, Audience: splitList(*f.audience), CookiePath: *f.cookiePath})
	case "securelink":
		if *f.keyFile == "" {
			return nil, fmt.Errorf("-auth securelink needs -auth-key FILE holding the secret: %w", errUsage)
		}
		b, err := os.ReadFile(*f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("secure link secret: %w", err)
		}
		return auth.NewSecureLink(*f.secureLinkMD5, strings.TrimRight(string(b), "\r\n"), nil)
	}
	return nil, fmt.Errorf("-auth %q: want off, cat or securelink: %w", *f.mode, errUsage)
}
