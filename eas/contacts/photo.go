package contacts

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/url"
	"strings"

	_ "image/gif" // decoders for PHOTOs stored by CardDAV clients
	_ "image/png"

	"github.com/easd/easd/eas/item"
)

// MaxPicture is the largest contacts:Picture, in bytes of base64 text
// (MS-ASCNTC 2.2.2.58: "limited to 48 KB of binary content that is
// encoded with base64 encoding"; a larger Picture from a client is status
// 6, so Apply returns an error wrapping item.ErrInvalid). A stored PHOTO
// that is larger (CardDAV clients store full-size photos) is scaled down
// and re-encoded as JPEG when rendered; the stored photo is not changed.
const MaxPicture = 48 << 10

// maxPixels bounds the images decoded for scaling (decompression bombs).
const maxPixels = 16 << 20

// decodePicture decodes a client's base64 Picture, tolerating line breaks
// and missing padding.
func decodePicture(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	if len(s) > MaxPicture {
		return nil, item.Invalidf("Picture of %d bytes exceeds %d (MS-ASCNTC 2.2.2.58)", len(s), MaxPicture)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil {
		return nil, item.Invalidf("Picture is not base64: %v", err)
	}
	return b, nil
}

// photoValue is the vCard 4.0 PHOTO value for image bytes: a data: URI
// (RFC 6350 section 6.2.4, RFC 2397).
func photoValue(b []byte) string {
	mt := http.DetectContentType(b)
	if !strings.HasPrefix(mt, "image/") {
		mt = "image/jpeg"
	}
	return "data:" + mt + ";base64," + base64.StdEncoding.EncodeToString(b)
}

// photoBytes returns the image in a PHOTO property: a vCard 4.0 data: URI
// or vCard 2.1/3.0 inline base64 (ENCODING=b / BASE64). A PHOTO that
// points elsewhere (http:) has no bytes here.
func photoBytes(p *prop) []byte {
	v := strings.TrimSpace(p.value)
	enc := strings.ToLower(p.param("ENCODING"))
	if enc == "b" || enc == "base64" {
		b, _ := decodeLenient(v)
		return b
	}
	if !strings.HasPrefix(strings.ToLower(v), "data:") {
		return nil
	}
	comma := strings.IndexByte(v, ',')
	if comma < 0 {
		return nil
	}
	meta, payload := v[5:comma], v[comma+1:]
	if strings.HasSuffix(strings.ToLower(meta), ";base64") {
		b, _ := decodeLenient(payload)
		return b
	}
	s, err := url.PathUnescape(payload)
	if err != nil {
		return nil
	}
	return []byte(s)
}

// decodeLenient decodes base64 with or without padding and whitespace.
func decodeLenient(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	return b, err
}

// pictureFor returns the contacts:Picture text for image bytes: base64 as
// is when it fits MaxPicture, else a scaled-down JPEG; "" when the image
// is too large and cannot be decoded.
func pictureFor(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if base64.StdEncoding.EncodedLen(len(b)) <= MaxPicture {
		return base64.StdEncoding.EncodeToString(b)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return ""
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return ""
	}
	base := scaleDown(img, 512) // one pass over the large image
	for _, side := range []int{512, 384, 256, 192, 128, 96, 64} {
		small := scaleDown(base, side)
		for _, q := range []int{85, 70, 55} {
			var out bytes.Buffer
			if jpeg.Encode(&out, small, &jpeg.Options{Quality: q}) != nil {
				return ""
			}
			if base64.StdEncoding.EncodedLen(out.Len()) <= MaxPicture {
				return base64.StdEncoding.EncodeToString(out.Bytes())
			}
		}
	}
	return ""
}

// scaleDown scales img so that its longer side is at most side pixels,
// averaging the source pixels that fall into each target pixel.
func scaleDown(img image.Image, side int) image.Image {
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	if w <= side && h <= side {
		return img
	}
	tw, th := side, side
	if w > h {
		th = max(1, h*side/w)
	} else {
		tw = max(1, w*side/h)
	}
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := 0; y < th; y++ {
		y0, y1 := r.Min.Y+y*h/th, r.Min.Y+(y+1)*h/th
		for x := 0; x < tw; x++ {
			x0, x1 := r.Min.X+x*w/tw, r.Min.X+(x+1)*w/tw
			var sr, sg, sb, n uint64
			for sy := y0; sy < max(y1, y0+1); sy++ {
				for sx := x0; sx < max(x1, x0+1); sx++ {
					cr, cg, cb, _ := img.At(sx, sy).RGBA()
					sr, sg, sb, n = sr+uint64(cr), sg+uint64(cg), sb+uint64(cb), n+1
				}
			}
			dst.Set(x, y, color.RGBA64{uint16(sr / n), uint16(sg / n), uint16(sb / n), 0xffff})
		}
	}
	return dst
}
