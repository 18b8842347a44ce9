package media

import (
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

// LanguageTag turns a container's language tag (ISO 639-2, bibliographic
// "fre" or terminological "fra", or a BCP 47 tag) into the BCP 47 tag DASH
// and HLS name languages with ("fr"), or "" when it names no language:
// empty, "und", malformed or unknown.
func LanguageTag(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 35 {
		return ""
	}
	tag, err := language.Parse(s)
	if err != nil || tag == language.Und {
		return ""
	}
	return tag.String()
}

// mdhdLanguage is the three-letter ISO 639-2/T code of a BCP 47 tag, which
// is all an MP4 track header can hold ("und" when there is none).
func mdhdLanguage(bcp47 string) string {
	tag, err := language.Parse(bcp47)
	if err != nil {
		return "und"
	}
	base, conf := tag.Base()
	iso := base.ISO3()
	if conf == language.No || len(iso) != 3 || tag == language.Und {
		return "und"
	}
	return iso
}

// languageName is the language's name in itself ("English", "français"),
// how a viewer looks for it in a menu; "" when unknown.
func languageName(bcp47 string) string {
	tag, err := language.Parse(bcp47)
	if err != nil || tag == language.Und {
		return ""
	}
	return display.Self.Name(tag)
}

// maxTitle bounds a track's title in runes: a menu entry, not a text.
const maxTitle = 64

// cleanTitle is a stream title fit for a manifest: control and
// formatting characters (which could hide text or break a playlist line)
// dropped, spaces collapsed, cut to maxTitle runes.
func cleanTitle(s string) string {
	var b strings.Builder
	n, space := 0, false
	for _, r := range s {
		if n == maxTitle {
			break
		}
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case !unicode.IsPrint(r) || r == '"':
			continue
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
			if n == maxTitle {
				break
			}
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// trackLabel is what a player's menu shows for an audio or subtitle
// track: its title, else its language's name followed by what the track
// is (roles' words, for the roles that are not the plain kind), else
// "<kind> n".
func trackLabel(lang, title, role, kind string, n int, roles map[string]string) string {
	if title != "" {
		return title
	}
	name := languageName(lang)
	if name == "" {
		name = kind
		if n > 0 {
			name += " " + strconv.Itoa(n)
		}
	}
	if what, ok := roles[role]; ok {
		name += " (" + what + ")"
	}
	return name
}

// audioRoleWords and textRoleWords say in a label what a track is.
var (
	audioRoleWords = map[string]string{"commentary": "commentary", "description": "audio description"}
	textRoleWords  = map[string]string{"caption": "captions", "forced-subtitle": "forced"}
)

// audioLabel is an audio track's label ("English (commentary)").
func audioLabel(lang, title, role string, n int) string {
	return trackLabel(lang, title, role, "Audio", n, audioRoleWords)
}

// withChannels adds a surround sound's layout to its label: "English
// (5.1)", "English (commentary, 5.1)".
func withChannels(label string, channels int) string {
	layout := map[int]string{6: "5.1", 7: "6.1", 8: "7.1"}[channels]
	if layout == "" {
		layout = strconv.Itoa(channels) + " channels"
	}
	if head, ok := strings.CutSuffix(label, ")"); ok && strings.Contains(head, " (") {
		return head + ", " + layout + ")"
	}
	return label + " (" + layout + ")"
}
