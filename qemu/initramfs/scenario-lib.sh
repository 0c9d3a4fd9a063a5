# shellcheck shell=sh
# Sourced by every scenario step (xtask/src/scenario.rs) and by memnotify-demo, so they
# wait on conditions, never on fixed sleeps: a starved guest on a busy host is slow, not
# wrong.

# wait_for [--while PID] 'CONDITION' [SECONDS]
# Evaluates the shell condition (in the step's own shell: its variables and functions
# apply) every 0.1 s until it holds. Fails after SECONDS (60), or at once when process PID
# has ended, such as a daemon that could not start, with a line saying which.
wait_for() {
	_wf_pid=
	if [ "$1" = --while ]; then
		_wf_pid=$2
		shift 2
	fi
	case ${2:-60} in
	'' | *[!0-9]*)
		echo "wait_for: SECONDS must be a whole number, not '$2'"
		return 2
		;;
	esac
	# Seconds since boot (a builtin read, no fork): the wall clock may be set meanwhile.
	read -r _wf_now _ </proc/uptime
	_wf_deadline=$((${_wf_now%.*} + ${2:-60}))
	until eval "$1"; do
		if [ -n "$_wf_pid" ] && ! kill -0 "$_wf_pid" 2>/dev/null; then
			echo "process $_wf_pid ended while waiting for: $1"
			return 1
		fi
		read -r _wf_now _ </proc/uptime
		if [ "${_wf_now%.*}" -ge "$_wf_deadline" ]; then
			echo "timed out after ${2:-60} s waiting for: $1"
			return 1
		fi
		sleep 0.1
	done
}
