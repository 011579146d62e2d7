"""How a local replica's end is said (the evaluation's stop note and a failed wake quote it)."""
from aitk_nb.targets.local import _exit_words


def test_a_signal_is_named_whether_the_replica_or_its_shell_reports_it():
    assert _exit_words(-9) == ", exit signal 9 (SIGKILL)"  # the replica process itself was killed
    assert _exit_words(137) == " with code 137 (signal 9, SIGKILL)"  # a shell whose child was killed
    assert _exit_words(3) == " with code 3" and _exit_words(200) == " with code 200"  # 200 - 128: no such signal
