package client

import (
	"context"
	"errors"
	"strings"

	"github.com/easd/easd/wbxml"
)

// DeviceInfo is Settings DeviceInformation > Set (MS-ASCMD 2.2.3.45).
type DeviceInfo struct {
	Model             string
	IMEI              string
	FriendlyName      string
	OS                string
	OSLanguage        string
	PhoneNumber       string
	UserAgent         string
	EnableOutboundSMS bool
	MobileOperator    string
}

// deviceInfo returns Config.DeviceInfo with its defaults.
func (c *Client) deviceInfo() DeviceInfo {
	d := c.cfg.DeviceInfo
	if d.Model == "" {
		d.Model = c.cfg.DeviceType
	}
	if d.UserAgent == "" {
		d.UserAgent = c.cfg.UserAgent
	}
	return d
}

// deviceInformation renders DeviceInformation > Set in schema order,
// leaving out empty fields; EnableOutboundSMS is sent from 14.0 on.
func deviceInformation(d DeviceInfo, sms bool) *wbxml.Node {
	set := wbxml.E(wbxml.SettingsSet)
	for _, f := range []struct {
		tag wbxml.Tag
		v   string
	}{
		{wbxml.SettingsModel, d.Model}, {wbxml.SettingsIMEI, d.IMEI},
		{wbxml.SettingsFriendlyName, d.FriendlyName}, {wbxml.SettingsOS, d.OS},
		{wbxml.SettingsOSLanguage, d.OSLanguage}, {wbxml.SettingsPhoneNumber, d.PhoneNumber},
		{wbxml.SettingsUserAgent, d.UserAgent},
	} {
		if f.v != "" {
			set.Append(wbxml.T(f.tag, f.v))
		}
	}
	if sms {
		v := "0"
		if d.EnableOutboundSMS {
			v = "1"
		}
		set.Append(wbxml.T(wbxml.SettingsEnableOutboundSMS, v))
	}
	if d.MobileOperator != "" {
		set.Append(wbxml.T(wbxml.SettingsMobileOperator, d.MobileOperator))
	}
	return wbxml.E(wbxml.SettingsDeviceInformation, set)
}

// Settings sends a Settings request (its root must be settings:Settings)
// and returns the response's root. A failing top-level Status is a
// *StatusError, returned with the body.
func (c *Client) Settings(ctx context.Context, req *wbxml.Node) (*wbxml.Node, error) {
	resp, err := c.Do(ctx, "Settings", req)
	if resp == nil {
		return nil, err
	}
	if err == nil && resp.Body == nil {
		err = errors.New("client: Settings: empty response")
	}
	return resp.Body, err
}

// SetDeviceInformation sends DeviceInformation > Set, as iOS does after
// provisioning.
func (c *Client) SetDeviceInformation(ctx context.Context, d DeviceInfo) error {
	body, err := c.Settings(ctx, wbxml.E(wbxml.SettingsSettings, deviceInformation(d, c.atLeast("14.0"))))
	if err != nil {
		return err
	}
	if st := body.Child(wbxml.SettingsDeviceInformation).ChildText(wbxml.SettingsStatus); st != "1" {
		return statusErr("Settings", "DeviceInformation", st)
	}
	return nil
}

// Account is one account of Settings UserInformation (14.1+).
type Account struct {
	ID             string
	Name           string
	DisplayName    string
	SendDisabled   bool
	PrimaryAddress string
	// Addresses holds PrimaryAddress first, then the others.
	Addresses []string
}

// UserInfo is the answer to Settings UserInformation > Get.
type UserInfo struct {
	// Addresses lists every SMTP address once: EmailAddresses >
	// SmtpAddress (up to 14.0), or those of all accounts (14.1+).
	Addresses []string
	// Accounts is filled for 14.1 and later.
	Accounts []Account
}

// UserInformation asks for the user's addresses, which iOS offers as From
// addresses.
func (c *Client) UserInformation(ctx context.Context) (*UserInfo, error) {
	body, err := c.Settings(ctx, wbxml.E(wbxml.SettingsSettings,
		wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet))))
	if err != nil {
		return nil, err
	}
	ui := body.Child(wbxml.SettingsUserInformation)
	if st := ui.ChildText(wbxml.SettingsStatus); st != "1" {
		return nil, statusErr("Settings", "UserInformation", st)
	}
	get := ui.Child(wbxml.SettingsGet)
	info := &UserInfo{}
	for a := range get.Child(wbxml.SettingsEmailAddresses).Each(wbxml.SettingsSmtpAddress) {
		info.Addresses = append(info.Addresses, a.Text())
	}
	for n := range get.Child(wbxml.SettingsAccounts).Each(wbxml.SettingsAccount) {
		acc := Account{
			ID:           n.ChildText(wbxml.SettingsAccountId),
			Name:         n.ChildText(wbxml.SettingsAccountName),
			DisplayName:  n.ChildText(wbxml.SettingsUserDisplayName),
			SendDisabled: n.ChildText(wbxml.SettingsSendDisabled) == "1",
		}
		ea := n.Child(wbxml.SettingsEmailAddresses)
		acc.PrimaryAddress = ea.ChildText(wbxml.SettingsPrimarySmtpAddress)
		if acc.PrimaryAddress != "" {
			acc.Addresses = append(acc.Addresses, acc.PrimaryAddress)
		}
		for a := range ea.Each(wbxml.SettingsSmtpAddress) {
			acc.Addresses = appendNew(acc.Addresses, a.Text())
		}
		for _, a := range acc.Addresses {
			info.Addresses = appendNew(info.Addresses, a)
		}
		info.Accounts = append(info.Accounts, acc)
	}
	return info, nil
}

// appendNew appends s unless list already holds it (case-insensitively).
func appendNew(list []string, s string) []string {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return list
		}
	}
	return append(list, s)
}
