# Shared by install.sh and install_macos.sh (sourced, not run): how a step is announced and run.
# DRY=1 prints the commands without running them.

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
run() {
    printf '    $ %s\n' "$*"
    if [ "$DRY" -eq 0 ]; then "$@"; fi
}
