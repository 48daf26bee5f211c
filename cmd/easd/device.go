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

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/store"
)

const deviceSynopsis = `easd device list|show|wipe|account-wipe|block|allow|remove|resync [flags] [USER [DEVICEID [FOLDER]]]

  list [USER]               list devices, of one user or of everyone
  show USER DEVICEID        everything known about one device, with the items that
                            failed to sync to it (retried, or quarantined after 3 strikes)
  wipe USER DEVICEID        erase the whole phone on its next contact (remote wipe)
  account-wipe USER DEVICEID
                            remove only this account's data from the phone
                            (protocol 16.1 devices; older ones are refused instead)
  block USER DEVICEID       refuse the device (HTTP 403 / status 129)
  allow USER DEVICEID       allow a blocked or quarantined device; also cancels
                            a wipe that has not been carried out
  remove USER DEVICEID      forget the device and its sync state; it may come back
                            as a new device unless blocked by rules
  resync [USER] DEVICEID FOLDER
                            make the device fetch one folder again from scratch (FOLDER:
                            its name or ServerId); its quarantined items there are tried
                            again; its other folders and other devices are not touched.
                            USER may be left out when only one user has that DEVICEID`

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
	case "resync":
		if len(pos) != 2 && len(pos) != 3 {
			return usageError("resync takes [USER] DEVICEID FOLDER")
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

	if sub == "resync" {
		return resyncFolder(ctx, e, s, pos)
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
		items, err := eas.QuarantinedItems(ctx, s, u.ID, d.ID)
		if err != nil {
			return err
		}
		showFailedItems(e.stdout, items)
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
		if err := eas.ForgetDeviceFailures(ctx, s, u.ID, d.ID); err != nil {
			return err
		}
		if err := s.DeleteDevice(ctx, d.ID); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "device %s of %s removed\n", d.DeviceID, u.Name)
		return recordAudit(ctx, e, s, "device.remove", u.Name, d.DeviceID, "")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "device %s of %s %s\n", d.DeviceID, u.Name, done)
	return recordAudit(ctx, e, s, "device."+sub, u.Name, d.DeviceID, done)
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

// showFailedItems lists the items that failed to sync to a device.
func showFailedItems(w io.Writer, items []eas.QuarantinedItem) {
	if len(items) == 0 {
		fmt.Fprintln(w, "\nfailed items: none")
		return
	}
	n := 0
	for _, q := range items {
		if q.Quarantined() {
			n++
		}
	}
	fmt.Fprintf(w, "\nfailed items: %d, %d quarantined (no longer sent; 'easd device resync' tries them again)\n", len(items), n)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FOLDER\tSERVERID\tITEM\tSTRIKES\tSTATE\tFIRST FAILURE\tLAST FAILURE\tREASON")
	for _, q := range items {
		state := "retried"
		if q.Quarantined() {
			state = "quarantined"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", dash(q.Folder), q.Collection, q.Item, q.Strikes, state,
			q.First.UTC().Format(time.RFC3339), q.Last.UTC().Format(time.RFC3339), oneLine(q.Reason))
	}
	tw.Flush()
}

// oneLine keeps a reason on one table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// resyncFolder runs 'device resync [USER] DEVICEID FOLDER'.
func resyncFolder(ctx context.Context, e *env, s store.Store, pos []string) error {
	var (
		u   store.User
		d   store.Device
		err error
	)
	if len(pos) == 3 {
		if u, err = findUser(ctx, s, pos[0]); err != nil {
			return err
		}
		d, err = s.Device(ctx, u.ID, pos[1])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("user %s has no device %q (see 'easd device list %s')", u.Name, pos[1], u.Name)
		}
		if err != nil {
			return err
		}
		pos = pos[1:]
	} else if u, d, err = deviceOfAnyone(ctx, s, pos[0]); err != nil {
		return err
	}
	res, err := eas.ResyncFolder(ctx, s, u, d, pos[1])
	if err != nil {
		return fmt.Errorf("device %s of %s: %w", d.DeviceID, u.Name, err)
	}
	fmt.Fprintf(e.stdout, "device %s of %s: folder %s (ServerId %s) reset\n", d.DeviceID, u.Name, res.Name, res.ServerID)
	if res.Key != "" {
		fmt.Fprintf(e.stdout, "  its sync state is removed: its next Sync of the folder (key %s) is answered\n"+
			"  \"invalid sync key\" (status 3) and it fetches the folder again from the start\n", res.Key)
	} else {
		fmt.Fprintln(e.stdout, "  it had not synced the folder yet: nothing to reset")
	}
	if res.Cleared > 0 {
		fmt.Fprintf(e.stdout, "  %d failed or quarantined item(s) of the folder forgotten: they are tried again\n", res.Cleared)
	}
	fmt.Fprintln(e.stdout, "  its other folders and the user's other devices are not touched")
	return recordAudit(ctx, e, s, "device.resync", u.Name, d.DeviceID,
		fmt.Sprintf("folder %s (ServerId %s), %d quarantined item(s) forgotten", res.Name, res.ServerID, res.Cleared))
}

// deviceOfAnyone finds the one device with that DeviceId among all users.
func deviceOfAnyone(ctx context.Context, s store.Store, deviceID string) (store.User, store.Device, error) {
	users, err := s.Users(ctx)
	if err != nil {
		return store.User{}, store.Device{}, err
	}
	var (
		owners []string
		u      store.User
		d      store.Device
	)
	for _, cand := range users {
		dev, err := s.Device(ctx, cand.ID, deviceID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return store.User{}, store.Device{}, err
		}
		owners = append(owners, cand.Name)
		u, d = cand, dev
	}
	switch len(owners) {
	case 0:
		return u, d, fmt.Errorf("no user has a device %q (see 'easd device list')", deviceID)
	case 1:
		return u, d, nil
	}
	return u, d, fmt.Errorf("device %q belongs to several users (%s): name the user, 'easd device resync USER %s FOLDER'",
		deviceID, strings.Join(owners, ", "), deviceID)
}
