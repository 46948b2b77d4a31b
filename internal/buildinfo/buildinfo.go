package buildinfo

// Version is set with -ldflags "-X .../buildinfo.Version=...".
var Version = "dev"
