# bash completion for symroute
_symroute() {
	local cur prev cmd
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	cmd=${COMP_WORDS[1]}
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "check generate apply try confirm remove recover verify discover schema reservations --version --help" -- "$cur"))
		return
	fi
	case $prev in
	-c | --config | -o | --output | --textfile) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--root) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--format) COMPREPLY=($(compgen -W "files butane ignition cloud-init" -- "$cur")); return ;;
	esac
	local flags
	case $cmd in
	check) flags="--config --root --strict" ;;
	generate) flags="--config --root --diff --strict --format" ;;
	apply) flags="--config --root --strict --timeout --no-rollback --force" ;;
	try) flags="--config --root --strict --timeout --wait" ;;
	confirm) flags="--root" ;;
	remove) flags="--root --all --force --offline --timeout" ;;
	recover) flags="--root --offline --timeout" ;;
	verify) flags="--config --root --output --textfile" ;;
	discover) flags="--root --output" ;;
	esac
	COMPREPLY=($(compgen -W "$flags" -- "$cur"))
}
complete -F _symroute symroute
