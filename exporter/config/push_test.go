package config

import "testing"

func TestPushErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad url", "push:\n  url: vm:8428\n", `push.yml:2: push.url: want an http or https URL, got "vm:8428"`},
		{"bad method", "push:\n  url: http://vm:8428/api/v1/import/prometheus\n  method: GET\n", `push.yml:3: push.method: want POST or PUT, got "GET"`},
		{"bad label", "push:\n  url: http://vm:8428/\n  extra_labels: [dc=eu, 1x=y]\n", `push.yml:3: push.extra_labels[1]: want name=value with a Prometheus label name, got "1x=y"`},
		{"zero interval", "push:\n  url: http://vm:8428/\n  interval: 0s\n", `push.yml:3: push.interval: must be from 1s to 24h, got 0s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("push.yml", []byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}
	if _, err := Parse("push.yml", []byte("push:\n  interval: 0s\n")); err != nil {
		t.Errorf("push without url is off and not checked: %v", err)
	}
}
