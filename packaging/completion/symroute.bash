# bash completion for symroute. Made from the command table in internal/orchestration/cli by go test -update: edit the table, not this file.
_symroute() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd=${COMP_WORDS[1]} prefix=
	# --flag=value: bash splits the word at '=' when COMP_WORDBREAKS holds it; otherwise it arrives whole.
	if [[ $cur == = && $prev == --* ]]; then
		cur=
	elif [[ $prev == = && $COMP_CWORD -ge 3 ]]; then
		prev=${COMP_WORDS[COMP_CWORD-2]}
	elif [[ $cur == --*=* ]]; then
		prev=${cur%%=*} prefix=${cur%%=*}= cur=${cur#*=}
	fi
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W "check generate apply try confirm remove recover verify status explain discover schema reservations help version --help --version" -- "$cur"))
		return
	fi
	local flags= arg=nothing
	case $cmd in
	check)
		case $prev in
		-c | --config) _symroute_offer "$cur" "$prefix" file; return ;;
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		esac
		flags="-c --config --root --strict -q --quiet -h --help" arg=file
		;;
	generate)
		case $prev in
		-c | --config) _symroute_offer "$cur" "$prefix" file; return ;;
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		--format) _symroute_offer "$cur" "$prefix" words files butane ignition cloud-init; return ;;
		esac
		flags="-c --config --root --strict -q --quiet --diff --format -h --help" arg=file
		;;
	apply)
		case $prev in
		-c | --config) _symroute_offer "$cur" "$prefix" file; return ;;
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		--timeout) _symroute_offer "$cur" "$prefix" nothing; return ;;
		esac
		flags="-c --config --root --strict -q --quiet --timeout --no-rollback --force -h --help" arg=file
		;;
	try)
		case $prev in
		-c | --config) _symroute_offer "$cur" "$prefix" file; return ;;
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		--timeout) _symroute_offer "$cur" "$prefix" nothing; return ;;
		--wait) _symroute_offer "$cur" "$prefix" nothing; return ;;
		esac
		flags="-c --config --root --strict -q --quiet --timeout --wait -h --help" arg=file
		;;
	confirm)
		case $prev in
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		esac
		flags="--root -h --help" arg=nothing
		;;
	remove)
		case $prev in
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		--timeout) _symroute_offer "$cur" "$prefix" nothing; return ;;
		esac
		flags="--root -q --quiet --all --force --offline --timeout -h --help" arg=nothing
		;;
	recover)
		case $prev in
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		--timeout) _symroute_offer "$cur" "$prefix" nothing; return ;;
		esac
		flags="--root --offline --timeout -h --help" arg=nothing
		;;
	verify)
		case $prev in
		-c | --config) _symroute_offer "$cur" "$prefix" file; return ;;
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		-o | --output) _symroute_offer "$cur" "$prefix" words text json; return ;;
		--textfile) _symroute_offer "$cur" "$prefix" file; return ;;
		esac
		flags="-c --config --root --strict -o --output --textfile -h --help" arg=file
		;;
	status)
		case $prev in
		-c | --config) _symroute_offer "$cur" "$prefix" file; return ;;
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		-o | --output) _symroute_offer "$cur" "$prefix" words text json yaml; return ;;
		esac
		flags="-c --config --root --strict -o --output -h --help" arg=interfaces
		;;
	explain)
		case $prev in
		-c | --config) _symroute_offer "$cur" "$prefix" file; return ;;
		--client) _symroute_offer "$cur" "$prefix" nothing; return ;;
		--to) _symroute_offer "$cur" "$prefix" nothing; return ;;
		--port) _symroute_offer "$cur" "$prefix" nothing; return ;;
		--proto) _symroute_offer "$cur" "$prefix" words tcp udp; return ;;
		--in) _symroute_offer "$cur" "$prefix" nothing; return ;;
		-o | --output) _symroute_offer "$cur" "$prefix" words text json; return ;;
		esac
		flags="-c --config --client --to --port --proto --in -o --output -h --help" arg=nothing
		;;
	discover)
		case $prev in
		--root) _symroute_offer "$cur" "$prefix" dir; return ;;
		-o | --output) _symroute_offer "$cur" "$prefix" words yaml; return ;;
		esac
		flags="--root -o --output -h --help" arg=nothing
		;;
	schema)
		case $prev in
		esac
		flags="-h --help" arg=nothing
		;;
	reservations)
		case $prev in
		esac
		flags="-h --help" arg=nothing
		;;
	help)
		case $prev in
		esac
		flags="-h --help" arg=commands
		;;
	version)
		case $prev in
		esac
		flags="-h --help" arg=nothing
		;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
	else
		_symroute_offer "$cur" "" $arg
	fi
}

# _symroute_offer CURRENT PREFIX KIND [WORD...] offers what a flag's value or an argument can be.
_symroute_offer() {
	local cur=$1 prefix=$2 kind=$3
	shift 3
	case $kind in
	file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -P "$prefix" -f -- "$cur")) ;;
	dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -P "$prefix" -d -- "$cur")) ;;
	words) COMPREPLY=($(compgen -P "$prefix" -W "$*" -- "$cur")) ;;
	commands) COMPREPLY=($(compgen -W "check generate apply try confirm remove recover verify status explain discover schema reservations help version" -- "$cur")) ;;
	interfaces) COMPREPLY=($(compgen -W "$(command ls /sys/class/net 2>/dev/null)" -- "$cur")) ;;
	*) COMPREPLY=() ;;
	esac
}
complete -F _symroute symroute
