package eas

import (
	"github.com/easd/easd/eas/calendar"
	"github.com/easd/easd/eas/contacts"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/notes"
	"github.com/easd/easd/eas/tasks"
	"github.com/easd/easd/store"
)

// DefaultCodecs are the converters of the store-backed classes easd
// serves, by class; a class without one is not offered to phones.
func DefaultCodecs() map[string]item.Codec {
	return map[string]item.Codec{
		store.ClassCalendar: calendar.Codec{},
		store.ClassContacts: contacts.Codec{},
		store.ClassTasks:    tasks.Codec{},
		store.ClassNotes:    notes.Codec{},
	}
}
