package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/store"
)

const deviceSynopsis = `easd device list|show|wipe|account-wipe|block|allow|remove [flags] [USER [DEVICEID]]

  list [USER]               list devices, of one user or of everyone
  show USER DEVICEID        everything known about one device
  wipe USER DEVICEID        erase the whole phone on its next contact (remote wipe)
  account-wipe USER DEVICEID
                            remove only this account's data from the phone
                            (protocol 16.1 devices; older ones are refused instead)
  block USER DEVICEID       refuse the device (HTTP 403 / status 129)
  allow USER DEVICEID       allow a blocked or quarantined device; also cancels
                            a wipe that has not been carried out
  remove USER DEVICEID      forget the device and its sync state; it may come back
                            as a new device unless blocked by rules`

func runDevice(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd device", deviceSynopsis, e.getenv, e.stderr)
	sf := addStoreFlags(fs)
	sub, pos, err := parseSubcommand(fs, args)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		if len(pos) > 1 {
			return usageError("list takes at most a USER")
		}
	case "show", "wipe", "account-wipe", "block", "allow", "remove":
		if len(pos) != 2 {
			return usageError("%s takes USER DEVICEID", sub)
		}
	default:
		return usageError("unknown subcommand %q", sub)
	}

	s, _, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()

	if sub == "list" {
		var users []store.User
		if len(pos) == 1 {
			u, err := findUser(ctx, s, pos[0])
			if err != nil {
				return err
			}
			users = []store.User{u}
		} else if users, err = s.Users(ctx); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tDEVICEID\tTYPE\tMODEL\tACCESS\tPROVISIONED\tWIPE\tLAST SEEN")
		for _, u := range users {
			devs, err := s.Devices(ctx, u.ID)
			if err != nil {
				return err
			}
			for _, d := range devs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, d.DeviceID, d.DeviceType, dash(d.Model),
					d.Access, yesNo(d.PolicyHash != ""), dash(string(d.Wipe)), d.LastSeen.UTC().Format(time.DateTime+"Z"))
			}
		}
		return tw.Flush()
	}

	u, err := findUser(ctx, s, pos[0])
	if err != nil {
		return err
	}
	d, err := s.Device(ctx, u.ID, pos[1])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("user %s has no device %q (see 'easd device list %s')", u.Name, pos[1], u.Name)
	}
	if err != nil {
		return err
	}
	var done string
	switch sub {
	case "show":
		showDevice(e.stdout, u, d)
		return nil
	case "wipe":
		_, err = s.SetDeviceWipe(ctx, d.ID, store.WipePending)
		done = "will be wiped on its next contact"
	case "account-wipe":
		_, err = s.SetDeviceWipe(ctx, d.ID, store.WipeAccountOnly)
		done = "will remove this account on its next contact"
		if v, perr := strconv.ParseFloat(d.ProtocolVersion, 64); perr == nil && v < 16.1 {
			done += fmt.Sprintf(" (it speaks %s, which has no account-only wipe: it will be refused instead)", d.ProtocolVersion)
		}
	case "block":
		err, done = s.SetDeviceAccess(ctx, d.ID, store.DeviceBlocked), "blocked"
	case "allow":
		err, done = s.SetDeviceAccess(ctx, d.ID, store.DeviceAllowed), "allowed"
		if err == nil {
			// Cancel a wipe not yet carried out; an acknowledged one stays.
			var cancelled bool
			cancelled, err = s.SetDeviceWipe(ctx, d.ID, store.WipeNone, store.WipePending, store.WipeAccountOnly)
			if cancelled {
				done = "allowed; the pending wipe is cancelled"
			}
		}
	case "remove":
		if err := s.DeleteDevice(ctx, d.ID); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "device %s of %s removed\n", d.DeviceID, u.Name)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "device %s of %s %s\n", d.DeviceID, u.Name, done)
	return nil
}

func findUser(ctx context.Context, s store.Store, name string) (store.User, error) {
	n, err := normalizeName(name)
	if err != nil {
		return store.User{}, usageError("%v", err)
	}
	u, err := s.User(ctx, n)
	if errors.Is(err, store.ErrNotFound) {
		return u, fmt.Errorf("no user %q", n)
	}
	return u, err
}

func showDevice(w io.Writer, u store.User, d store.Device) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"user", u.Name}, {"device id", d.DeviceID}, {"type", d.DeviceType}, {"user agent", d.UserAgent},
		{"model", d.Model}, {"friendly name", d.FriendlyName}, {"os", d.OS}, {"os language", d.OSLanguage},
		{"imei", d.IMEI}, {"phone number", d.PhoneNumber}, {"operator", d.MobileOperator},
		{"protocol", d.ProtocolVersion}, {"access", string(d.Access)},
		{"provisioned", yesNo(d.PolicyHash != "")}, {"wipe", dash(string(d.Wipe))},
		{"first seen", d.FirstSeen.UTC().Format(time.RFC3339)}, {"last seen", d.LastSeen.UTC().Format(time.RFC3339)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], dash(kv[1]))
	}
	tw.Flush()
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
