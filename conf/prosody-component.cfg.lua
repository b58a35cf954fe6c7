-- Add to your Prosody configuration (e.g. /etc/prosody/conf.d/xmppblog.cfg.lua),
-- then `prosodyctl reload`. The secret must equal [component] secret in xmppblog.toml.

-- Where Prosody accepts XEP-0114 components (default: 127.0.0.1 and ::1, port 5347).
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

Component "blog.example.org"
	component_secret = "change-me"
