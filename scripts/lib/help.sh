# shellcheck shell=bash
# scripts/lib/help.sh — `-h`/`--help` for the scripts under scripts/: prints
# the calling script's header comment (line 2 up to the first line that is
# not a comment) and exits 0, before the script installs or builds anything.
# Source it first thing and call `help_if_asked "$@"`.
help_if_asked() {
    case ${1:-} in
    -h | --help)
        sed -n '2,/^[^#]/{/^[^#]/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[1]}"
        exit 0
        ;;
    esac
}
