"""What overheard ships for people who test against it: the sink conformance kit and an
Open311 GeoReport v2 server that speaks the spec."""
