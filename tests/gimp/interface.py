"""The plug-in as a user meets it: GIMP 3's window on Xvfb, Filters > DeepDream..., the dialog,
OK, progress, the live preview, Edit > Undo. Each step waits for the window it needs (menus and lists
are windows of their own) instead of sleeping, within a timeout. The interface tests assert on what
these walks return; tests/gimp/screenshots.py makes the README's pictures from the same walks."""

import re
import subprocess
import time

import numpy as np
from harness import Screen, poll, stop

NOWHERE = (800, 12)  # the empty end of the menu bar: keys reach GIMP's window, no brush outline on the canvas
CANVAS = (slice(80, 760), slice(200, 1040))  # rulers to scroll bars, above the status bar, at 1280x800
PRESET_COMBO = (253, 28)  # in the DeepDream dialog, from its top left corner
OK_BUTTON = (-68, -42)  # from its bottom right corner
DIALOG_AT = (300, 150)  # where the walks put the dialog
GIMP_START_S = 300
# What the plug-in and its dialog must never print: GLib criticals and warnings (GTK's and GIMP's
# widget libraries report to the plug-in's stderr as "(python-fu-deepdream:PID): Domain-LEVEL"),
# the procedure dialog's complaints (a clashing or missing mnemonic), Python's warnings and tracebacks.
COMPLAINT = re.compile(r"\(python-fu-deepdream(-zoom)?:\d+\): [\w-]+-(CRITICAL|WARNING)"
                       r"|Procedure 'python-fu-deepdream(-zoom)?'"
                       r"|deepdream\.py:\d+: \w*Warning|Traceback")


def plugin_complaints(log):
    return [line for line in log.splitlines() if COMPLAINT.search(line)]


def image_window(screen, layers, timeout=90):
    """GIMP's image window once its title says it holds `layers` layers."""
    return poll(lambda: image_title(screen, layers), timeout, 0.3)


def image_title(screen, layers):
    """The image window's title if it says `layers` layers, else None."""
    return next((name for name in screen.window_names("GIMP$") if f"{layers} layer" in name), None)


def redrawn(screen, since, timeout=60):
    """The screen once the canvas differs from `since` and GIMP has stopped drawing: the window's title
    counts a new layer before its pixels are in, and the canvas follows in idle time."""
    poll(lambda: not np.array_equal(screen.pixels()[CANVAS], since[CANVAS]), timeout)
    return screen.settled()


def open_menu(screen, keys):
    """Opens a menu of the menu bar with its mnemonic; its window, once it is drawn."""
    before = screen.geometry()
    screen.xdotool("key", keys)
    menu = screen.popup(before)
    assert menu, f"{keys} opened no menu"
    return menu


def no_pictures(screen, name, window="root"):
    pass


class GimpWindow:
    """GIMP's GUI on its own Xvfb screen with `image` (a path inside the root) open in a 1280x800
    window; everything GIMP and its plug-ins print goes to a file that log() reads."""

    def __init__(self, gimp, image, endpoint, script=None):
        """`script`: Python that GIMP runs once its window is up (python-fu-eval), to set the image up."""
        self.log_path = gimp.host("gimp-gui.log")
        self.screen = Screen(gimp)
        batch = ["--batch-interpreter=python-fu-eval", "-b", script] if script else []
        with open(self.log_path, "wb") as log:
            self.app = subprocess.Popen(gimp.command(gimp.gui_program, "--no-splash", image, *batch,
                                                     DISPLAY=self.screen.display, DEEPDREAM_ENDPOINT=endpoint),
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # GIMP's start reads every plug-in and font: minutes on a loaded 2-core machine
            assert image_window(self.screen, 1, GIMP_START_S), "GIMP's image window did not appear"
            self.screen.xdotool("windowsize", self.screen.windows("GIMP$")[0], 1280, 800)
            self.screen.xdotool("mousemove", *NOWHERE)
        except BaseException:
            self.close()
            raise

    def open_dialog(self, shoot=no_pictures):
        """Filters > DeepDream...: the dialog's window and its geometry."""
        screen = self.screen
        menu = open_menu(screen, "alt+r")  # Filte_rs
        shoot(screen, "menu")
        screen.xdotool("key", "Up", "Up", "Return")  # the menu's last but one entry, DeepDream... (then its Zoom)
        dialog = screen.wait_window("^DeepDream...$", 30)
        assert dialog, "Filters > DeepDream... did not open a dialog"
        assert screen.wait_closed(menu, 10)
        # Xvfb has no window manager: the dialog opens in the screen's corner, where the preset list
        # opened on Classic DeepDream has no room above it for Custom and Subtle, and the keyboard goes
        # where it is sent.
        screen.xdotool("windowmove", "--sync", dialog, *DIALOG_AT)
        screen.xdotool("windowfocus", "--sync", dialog)
        return dialog, screen.geometry()[dialog]

    def open_zoom_dialog_and_cancel(self):
        """Filters > DeepDream: Zoom... (its mnemonic, Z) opens the zoom's dialog, all its fields built;
        Escape closes it, nothing dreamed."""
        screen = self.screen
        menu = open_menu(screen, "alt+r")
        screen.xdotool("key", "z")
        dialog = screen.wait_window("^DeepDream: Zoom...$", 30)
        assert dialog, "Filters > DeepDream: Zoom... did not open a dialog"
        assert screen.wait_closed(menu, 10)
        screen.xdotool("windowfocus", "--sync", dialog)
        screen.xdotool("key", "Escape")
        assert screen.wait_closed(dialog, 10), "Escape did not close the zoom's dialog"

    def press_ok(self, dialog, geometry):
        x, y, width, height = geometry
        self.screen.click(x + width + OK_BUTTON[0], y + height + OK_BUTTON[1])
        self.screen.xdotool("mousemove", *NOWHERE)
        assert self.screen.wait_closed(dialog, 10), "OK did not close the dialog"

    def dream_with_steps(self, steps):
        """Filters > DeepDream... with Steps per octave (its mnemonic, Alt+T) set to `steps`, then OK."""
        dialog, geometry = self.open_dialog()
        self.screen.xdotool("key", "alt+t", "ctrl+a")
        self.screen.xdotool("type", str(steps))
        self.screen.xdotool("key", "Tab")
        self.press_ok(dialog, geometry)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def close(self):
        stop(self.app)
        self.screen.close()


def dream_and_undo(gimp, image, endpoint, daemon_busy, shoot=no_pictures):
    """Open `image` (a path inside the root) in GIMP, dream it with the Subtle preset and undo.
    Returns the screen (RGB arrays) before the dream, after it and after the undo, and what GIMP printed;
    `shoot(screen, name, window)` is called at the moments the README shows (the menu, the dialog,
    the Edit menu; preview_then_failure shows progress). The dialog opens on Classic DeepDream, the
    preset of the default values: one Up in the preset list is Subtle textures (from Custom it would
    stay Custom)."""
    window = GimpWindow(gimp, image, endpoint)
    screen = window.screen
    try:
        before = screen.settled()
        dialog, (x, y, width, height) = window.open_dialog(shoot)
        listed = screen.geometry()
        screen.click(x + PRESET_COMBO[0], y + PRESET_COMBO[1])
        presets = screen.popup(listed)
        assert presets, "the preset list did not open"
        screen.xdotool("key", "Up", "Return")
        assert screen.wait_closed(presets, 10)
        shoot(screen, "dialog", dialog)
        window.press_ok(dialog, (x, y, width, height))
        assert poll(daemon_busy, 30, 0.1), "the daemon got no dream"
        assert image_window(screen, 2), "no new layer after OK"
        # The title counts the new layer as soon as it is inserted; GIMP 3.2 shows it empty until the
        # plug-in's pixels and its end arrive (about 2 s later on 2 busy cores), and the screen is still
        # in between: wait for the plug-in to finish.
        assert poll(lambda: not gimp.plugin_processes(), 60, 0.1), "the plug-in did not finish after its layer"
        after = redrawn(screen, before)

        menu = open_menu(screen, "alt+e")  # _Edit
        shoot(screen, "edit-menu")
        screen.xdotool("key", "u")  # _Undo DeepDream
        assert screen.wait_closed(menu, 10)
        assert image_window(screen, 1), "one undo did not remove the DeepDream layer"
        undone = redrawn(screen, after)
        window.open_zoom_dialog_and_cancel()  # what it prints is in the log the caller checks
        # GIMP stopped while the plug-in still ends would make it print a broken pipe
        assert poll(lambda: not gimp.plugin_processes(), 30, 0.1), "the zoom's plug-in did not end after Escape"
    finally:
        window.close()
    return before, after, undone, window.log()


def preview_then_failure(gimp, image, endpoint, daemon_busy, stop_daemon, shoot=no_pictures):
    """Open `image`, dream it long (Steps per octave, reached by its mnemonic Alt+T, set to 400), see
    the dream grow in a layer of its own while the daemon works, then stop the daemon mid-dream
    (`stop_daemon()`): the plug-in ends with an error. Returns the screen before the dream and with
    the preview, the image window's titles before, with the preview and after the failure (they count
    the layers and mark a changed image with '*'), and what GIMP printed."""
    window = GimpWindow(gimp, image, endpoint)
    screen = window.screen
    try:
        before = screen.settled()
        title_before = image_title(screen, 1)
        window.dream_with_steps(400)
        assert poll(daemon_busy, 30, 0.1), "the daemon got no dream"
        # Only a preview makes a second layer while the daemon still dreams: the dream's own layer
        # comes after the daemon's last word.
        assert poll(lambda: daemon_busy() and image_title(screen, 2), 60, 0.2), "no preview layer mid-dream"
        title_preview = image_title(screen, 2)
        previewed = redrawn(screen, before)
        shoot(screen, "preview")
        stop_daemon()
        assert screen.wait_window("^GIMP Message$", 60), "GIMP showed no message about the failed dream"
        assert image_window(screen, 1, 60), "the preview layer stayed after the dream failed"
        title_after = image_title(screen, 1)
    finally:
        window.close()
    return before, previewed, (title_before, title_preview, title_after), window.log()


SELECT_IN_GUI = """from gi.repository import Gimp
image = Gimp.get_images()[0]
image.select_rectangle(Gimp.ChannelOps.REPLACE, {x}, {y}, {width}, {height})
image.clean_all()
Gimp.displays_flush()
"""
PREVIEW_INTERVAL_S = 2  # the daemon's default between previews within an octave (docs/protocol.md)
CANCEL_BUTTON = (-284, -18)  # the status bar's Cancel while a plug-in's progress shows, from the window's corner


def selection_cancel_and_round_trip(gimp, image, endpoint, daemon_busy, selection, shoot=no_pictures):
    """Open `image` with `selection` (x, y, width, height) selected, dream it long and watch the preview,
    press the status bar's Cancel mid-dream (GIMP kills the plug-in), then Ctrl+Z; then a short dream,
    Undo, Redo, Filters > Repeat (Ctrl+F) and two Undos. Returns the screens (before, with the preview),
    the image window's titles (before; after Cancel; after its Ctrl+Z; after the round trip) and the log.
    The screens: before, with the first preview, and a preview interval later, in the same octave."""
    window = GimpWindow(gimp, image, endpoint, SELECT_IN_GUI.format(
        x=selection[0], y=selection[1], width=selection[2], height=selection[3]))
    screen = window.screen
    image_window_id = screen.windows("GIMP$")[0]

    def keys(*names):  # GIMP's shortcuts, to its image window (the canvas under the pointer, as a user's)
        screen.xdotool("windowfocus", "--sync", image_window_id)
        screen.xdotool("mousemove", *NOWHERE)
        screen.xdotool("key", *names)

    try:
        assert poll(lambda: image_title(screen, 1) and not image_title(screen, 1).startswith("*"), 60), \
            "the selection script did not run"
        before = screen.settled()
        title_before = image_title(screen, 1)
        window.dream_with_steps(400)
        assert poll(lambda: daemon_busy() and image_title(screen, 2), 60, 0.2), "no preview layer mid-dream"
        previewed = redrawn(screen, before)
        shoot(screen, "preview-selection")
        time.sleep(PREVIEW_INTERVAL_S + 1.5)  # still in the first of 4 octaves of 400 steps: a later preview
        later = screen.settled()
        x, y, width, height = screen.geometry()[image_window_id]
        screen.click(x + width + CANCEL_BUTTON[0], y + height + CANCEL_BUTTON[1])
        assert poll(lambda: not gimp.plugin_processes(), 30, 0.1), "Cancel did not stop the plug-in"
        shoot(screen, "cancelled")
        # GIMP says it closed the plug-in's open undo group ("left image undo in inconsistent state"): an
        # artist reads it and presses OK.
        message = screen.wait_window("^GIMP Message$", 10)
        if message:
            screen.xdotool("windowfocus", "--sync", message)
            screen.xdotool("key", "Return")
            assert screen.wait_closed(message, 10), "GIMP's message did not close"
        title_cancelled = poll(lambda: image_title(screen, 2) or image_title(screen, 1), 10)
        keys("ctrl+z")
        title_undone = poll(lambda: image_title(screen, 1), 10)

        window.dream_with_steps(2)
        assert image_window(screen, 2, 120), "the short dream made no layer"
        assert poll(lambda: not gimp.plugin_processes(), 120, 0.1), "the short dream's plug-in did not end"
        for key, layers in (("ctrl+z", 1), ("ctrl+y", 2), ("ctrl+f", 3), ("ctrl+z", 2), ("ctrl+z", 1)):
            keys(key)
            assert image_window(screen, layers, 120), f"{key} did not leave {layers} layers"
            assert poll(lambda: not gimp.plugin_processes(), 120, 0.1), f"the plug-in did not end after {key}"
        title_after = image_title(screen, 1)
    finally:
        window.close()
    return (before, previewed, later), (title_before, title_cancelled, title_undone, title_after), window.log()
