package main

import "github.com/spf13/pflag"

// acmeFlags are the --acme-* flags `up` and `directory` share; section
// names the config table they override (http, directory_server).
type acmeFlags struct {
	domains   []string
	directory string
	email     string
}

func (a *acmeFlags) register(fl *pflag.FlagSet, section, what string) {
	fl.StringSliceVar(&a.domains, "acme-domain", nil, "get a publicly trusted certificate for "+what+" from an ACME CA for this DNS name (repeatable; "+section+".acme_domains)")
	fl.StringVar(&a.directory, "acme-directory", "", "ACME directory URL (default: Let's Encrypt; "+section+".acme_directory)")
	fl.StringVar(&a.email, "acme-email", "", "ACME account contact e-mail ("+section+".acme_email)")
}

// apply writes the flags given on the command line into the config fields.
func (a *acmeFlags) apply(fl *pflag.FlagSet, domains *[]string, directory, email *string) {
	if fl.Changed("acme-domain") {
		*domains = a.domains
	}
	if fl.Changed("acme-directory") {
		*directory = a.directory
	}
	if fl.Changed("acme-email") {
		*email = a.email
	}
}
