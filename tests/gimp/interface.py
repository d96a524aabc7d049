"""The plug-in as a user meets it: GIMP 3's window on Xvfb, Filters > DeepDream..., the dialog,
OK, progress, Edit > Undo. Each step waits for the window it needs (menus and lists are windows of
their own) instead of sleeping, within a timeout. The interface test asserts on what this returns;
tests/gimp/screenshots.py makes the README's pictures from the same walk through."""

import subprocess

import numpy as np
from harness import Screen, poll, stop

NOWHERE = (800, 12)  # the empty end of the menu bar: keys reach GIMP's window, no brush outline on the canvas
CANVAS = (slice(80, 760), slice(200, 1040))  # rulers to scroll bars, above the status bar, at 1280x800
PRESET_COMBO = (253, 28)  # in the DeepDream dialog, from its top left corner
OK_BUTTON = (-68, -42)  # from its bottom right corner


def image_window(screen, layers, timeout=90):
    """GIMP's image window once its title says it holds `layers` layers."""
    return poll(lambda: [n for n in screen.window_names("GIMP$") if f"{layers} layer" in n], timeout, 0.3)


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


def dream_and_undo(gimp, image, endpoint, daemon_busy, shoot=no_pictures):
    """Open `image` (a path inside the root) in GIMP, dream it with the Subtle preset and undo.
    Returns the screen (RGB arrays) before the dream, after it and after the undo; `shoot(screen, name,
    window)` is called at the moments the README shows (the menu, the dialog, progress, the Edit menu)."""
    screen = Screen(gimp)
    app = subprocess.Popen(gimp.command(gimp.gui_program, "--no-splash", image, DISPLAY=screen.display,
                                        DEEPDREAM_ENDPOINT=endpoint),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert image_window(screen, 1), "GIMP's image window did not appear"
        screen.xdotool("windowsize", screen.windows("GIMP$")[0], 1280, 800)
        screen.xdotool("mousemove", *NOWHERE)
        before = screen.settled()

        menu = open_menu(screen, "alt+r")  # Filte_rs
        shoot(screen, "menu")
        screen.xdotool("key", "Up", "Return")  # the menu's last entry, DeepDream...
        dialog = screen.wait_window("^DeepDream...$", 30)
        assert dialog, "Filters > DeepDream... did not open a dialog"
        assert screen.wait_closed(menu, 10)
        x, y, width, height = screen.geometry()[dialog]
        listed = screen.geometry()
        screen.click(x + PRESET_COMBO[0], y + PRESET_COMBO[1])
        presets = screen.popup(listed)
        assert presets, "the preset list did not open"
        screen.xdotool("key", "Down", "Return")  # from Custom (the default) to Subtle textures
        assert screen.wait_closed(presets, 10)
        shoot(screen, "dialog", dialog)
        screen.click(x + width + OK_BUTTON[0], y + height + OK_BUTTON[1])
        screen.xdotool("mousemove", *NOWHERE)
        assert screen.wait_closed(dialog, 10), "OK did not close the dialog"
        assert poll(daemon_busy, 30, 0.1), "the daemon got no dream"
        shoot(screen, "progress")
        assert image_window(screen, 2), "no new layer after OK"
        after = redrawn(screen, before)

        menu = open_menu(screen, "alt+e")  # _Edit
        shoot(screen, "edit-menu")
        screen.xdotool("key", "u")  # _Undo DeepDream
        assert screen.wait_closed(menu, 10)
        assert image_window(screen, 1), "one undo did not remove the DeepDream layer"
        undone = redrawn(screen, after)
    finally:
        stop(app)
        screen.close()
    return before, after, undone
