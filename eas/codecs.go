package eas

import "github.com/easd/easd/eas/item"

// DefaultCodecs are the converters of the store-backed classes easd
// serves, by class; a class without one is not offered to phones.
func DefaultCodecs() map[string]item.Codec {
	return map[string]item.Codec{}
}
