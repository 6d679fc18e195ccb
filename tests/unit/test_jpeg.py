"""darknetpy.jpeg: stb_image's JPEG pixels (what Darknet builds without OpenCV feed the network).

Exactness is checked three ways: the golden ``input`` tensors (Darknet's own letterbox of its
stb_image decode of image.jpg), SHA-256 digests of stb_image's output for dog.jpg and for small
embedded JPEGs (computed with stb_image v2.27 built by gcc -O2 on x86-64, i.e. its SSE2 IDCT and
upsampler), and closeness to libjpeg-turbo (OpenCV, Pillow) everywhere else.
"""
from __future__ import annotations

import base64
import hashlib
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from darknetpy import sample_image
from darknetpy.errors import DataError
from darknetpy.image import letterbox_image, to_tensor
from darknetpy.jpeg import decode_jpeg, load_image_stb

from ..conftest import GOLDEN, GOLDEN_CASES

pytestmark = pytest.mark.unit

DOG = sample_image()  # Darknet's data/dog.jpg, bundled
# sha256 of stb_image's stbi_load(dog.jpg, 3) bytes (768x576, 4:4:0 sampling, restart interval 96)
DOG_STB_SHA256 = "7d5849a5191fcfe2c7aab17fca58bc1a517935b99654c11c45c31aac6503e2a4"

# name: ((height, width), sha256 of stb_image's RGB bytes, the JPEG file in base64)
STB_CASES = {
    "420": (
        (11, 19),
        "2451b360aca8fd9c2994eb91a7cd5398821e4d1107d656340d39f8b59bc5052b",
        (
            "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcp"
            "LDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy"
            "MjIyMjIyMjIyMjIyMjL/wAARCAALABMDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAA"
            "AgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6"
            "Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXG"
            "x8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREA"
            "AgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
            "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPE"
            "xcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwC94vidrKylt7fejIxd1UkrjHU9up/KsLwt"
            "etezyWEhLDJVa6S3lebQXWQ7lwRgjtXG+HQIvEblBg+YarJsnh7KcJP4dgzLELGt5Vy2VN79zpbjwWPtD4gzk5zmivT2wCOB"
            "0Hb2orvTqJWuddOqowUbbI//2Q=="
        ),
    ),
    "422": (
        (11, 19),
        "5de9aa490d6c990c7b9b4103c20d2faa1f4d6516793d5075bc19d4f6ec8a0e65",
        (
            "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcp"
            "LDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy"
            "MjIyMjIyMjIyMjIyMjL/wAARCAALABMDASEAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAA"
            "AgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6"
            "Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXG"
            "x8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREA"
            "AgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
            "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPE"
            "xcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwC94vidrKylt7fejIxd1UkrjHU9up/KsLwt"
            "etezyWEhLDJVa8rJsHKeHat8Ov4nTxFClLKaVKE7zT1V1pZ9t0a9x4LH2h8QZyc5zRX08az5Ub0FH2UdOiLtvK82gush3Lgj"
            "BHauN8OgReI3KDB8w1vk9OKhViloeK/ezetCWx7o2ARwOg7e1Fc6px7Henof/9k="
        ),
    ),
    "440_restart": (
        (11, 19),
        "1692f08eebbaa6c7918817cd4f0f8592822ecafdb66273e851c315c27ffc2b7b",
        (
            "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsjHBYWICwg"
            "IyYnKSopGR8tMC0oMCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo"
            "KCgoKCgoKCgoKCgoKCj/wAARCAALABMDARIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAA"
            "AgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6"
            "Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXG"
            "x8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREA"
            "AgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
            "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPE"
            "xcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/90ABAAB/9oADAMBAAIRAxEAPwDT+I0Dvp2nTWlt5kboxkdULFMb"
            "cZI6ZyfyqzZSvP4akSY71wRgjtXg4LIlhazgpbnqY3iNcL1ZUY0lNO27tb+v0P/QyvAV+2oXM2mzEsASq+prN8GAQ+LJDGAp"
            "EpFfR1eHqCw8akfistTy8VgY59UeMfu3bdu3kf/Rt3ngAfaZMW5YE5zmvanABA2r0HUD0r1Ye1jFK51YaoqNKNO17H//2Q=="
        ),
    ),
    "411_progressive_restart": (
        (11, 19),
        "e51846b9e9dd1fa212e8862e53b7141c2989796509c863c22ef1e0a13e602ee0",
        (
            "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsjHBYWICwg"
            "IyYnKSopGR8tMC0oMCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo"
            "KCgoKCgoKCgoKCgoKCj/wgARCAALABMDAUEAAhEBAxEB/8QAGAAAAwEBAAAAAAAAAAAAAAAAAAQFBgf/xAAWAQEBAQAAAAAA"
            "AAAAAAAAAAAEAQL/3QAEAAH/2gAMAwEAAhADEAAAAWZdAiP/0Hs704bn/8QAHRAAAgEEAwAAAAAAAAAAAAAAAgQBAAUREyEi"
            "I//aAAgBAQABBQK4x5//0ED2F//RNDt//9IJyt//00+G/wD/1K//xAAcEQACAQUBAAAAAAAAAAAAAAABAgADFCEiQmH/2gAI"
            "AQMBAT8BYLckjOqz/9Cn0fTP/8QAGhEAAgIDAAAAAAAAAAAAAAAAAQIAAwQTUf/aAAgBAgEBPwHBU11A9n//0Ao1JP/EABsQ"
            "AAIDAAMAAAAAAAAAAAAAAAABAgMRIkFR/9oACAEBAAY/Aq3GOrs//9B1s//RfE//0np//9N56f/UP//EABsQAQACAgMAAAAA"
            "AAAAAAAAAAEAESFRMUFx/9oACAEBAAE/IXbMDYLrif/QXJ+if//R2if/0kJmT//T1iP/1Hwn/9oADAMBAAIAAwAAABDz/9B/"
            "/8QAGhEAAgMBAQAAAAAAAAAAAAAAAREAMUGBwf/aAAgBAwEBPxBpERYKIBY5Syf/0L6e8//EABoRAAICAwAAAAAAAAAAAAAA"
            "AAERADFBobH/2gAIAQIBAT8QqUg0xP/QSFg9n//EABsQAQACAwEBAAAAAAAAAAAAAAEAESExQVGR/9oACAEBAAE/ELfZlVXC"
            "01dvyf/QchAvoz//0RxILd3P/9J+sSUnJ//TIgCGT//UIIcDYeT/2Q=="
        ),
    ),
    "444_q100_progressive": (
        (11, 19),
        "35f6a4b097f84988a46a2e7167563d50a01255b632c203ab7eb2ce91674b0243",
        (
            "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
            "AQEBAQEBAQEBAQEBAQEBAQH/2wBDAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
            "AQEBAQEBAQEBAQEBAQH/wgARCAALABMDAREAAhEBAxEB/8QAFwAAAwEAAAAAAAAAAAAAAAAABgcICf/EABcBAQEBAQAAAAAA"
            "AAAAAAAAAAgGBwn/2gAMAwEAAhADEAAAATgaMREt3mQ3bVTmuYYfG7tot0jLV//EABwQAAEFAQEBAAAAAAAAAAAAAAECAwQF"
            "BgcRFP/aAAgBAQABBQLosd1dfgrNdnJmcxH0w3nJGaxgDGsV4D//xAAjEQACAgEEAgMBAQAAAAAAAAABAgMEBQYREhMAIQcI"
            "FDFC/9oACAEDAQE/Afg46L0rDqTEax1hjtHHGyY6pRGQ1HgsCl+O5Lk0uy1jllLv+FqNVpBEB+dZH5M/arD7OYFc38oZmzpn"
            "IHLYWjqDJU6WXrWIr0WSpQ5CVado3KaijP3xRpYaeujVbEJR4I+h1hXQsVNNI4JZYUeRaeztK9fs5d0u/MySqxI/nLiFbbdA"
            "EK+fcy7bx2tR+GeStwni49R2AIm6gdvYJEaIqkgkBRtt58WUamU0zVnyNeO3L2MQ8w5bFFTgVHpVK/5IAIHoegPK5McSohKo"
            "vIKoJ2A5t5//xAAnEQACAgECBQMFAAAAAAAAAAABAgMEBRESBhQhIjEABzMTIzJCgf/aAAgBAgEBPwH2uwN3EZDJQLUexd5i"
            "Ja1I15JBOmrpIYoYlaeWWNo4Yy0Um/cwDlZfhve2E9PC4PiZKRpWpqOMu3oTXkg5Z5qsNiSCWGaMvFy7zN2TSPJrEwLtt3Vs"
            "Xm7Ax9QNJVBEQBUtKm3qe0L9Ntqr4Ubm7QO5vJpYnHY/iuN6dVIHXlpFdS7Orz2EMhDOzMNWAZeukbgPHtYA+svUrz8EUklj"
            "3KccjldzqNdkY/Vh06k7fx1LNpuYkpjqZB+wB3ydFeRF+RvCo4UfwdT18+v/xAAnEAABAwMDAwQDAAAAAAAAAAABAgMRBBIx"
            "ACFBBRMyFCJCUVJhwf/aAAgBAQAGPwLo1RQ0PfZdYqF1L7TLryqctelKA46ghLQd7rxF8hwNkoTAWlyo6K+pSwFutNcqMSmd"
            "pJmNztE/oBx6KMqlV1xVm4Xf3POdPNvq7iChxFqkpi207Y55/L5Tp0tAIIq3BI+gRmZnJmc86HtR4N5QknwTyQTr/8QAHBAB"
            "AQADAAMBAAAAAAAAAAAAAREAITFBUWGB/9oACAEBAAE/IWKR6/xvVFkPlBA2RLPgyfZGGYFgZoWJLdu4qPQFmHwdUY84Yba7"
            "p6OAMLgLUPo0U224SBvJszbWfq5//9oADAMBAAIAAwAAABBTIn//xAAZEQEBAQEBAQAAAAAAAAAAAAABEQAxIZH/2gAIAQMB"
            "AT8QAbH200IJQ9e1K1svtT2y0vMuGooxB0D+GZMr1cawvZV6xFFw7GoE2IaFIRIAF/7MQ8Cq/Xf/xAAZEQEBAQEBAQAAAAAA"
            "AAAAAAABEQAhMUH/2gAIAQIBAT8QFu033plid88MNthLfJzzIrYZvRaBAIQBDRxo3UpMDdgOQNOwCMDHzpZUInHiNQGIIAJ4"
            "kKw6KpX/xAAXEAEBAQEAAAAAAAAAAAAAAAABESEA/9oACAEBAAE/ED6TtTfgdu0uwRlK1f8AalMFuXoWE1rGYFBYRFQC5UTE"
            "lMBNUajY8cIKDYhKhzQWcawHrysuNV1wYYAf/9k="
        ),
    ),
    "grey_progressive": (
        (11, 19),
        "2639cd1ebba505eaca282177c03c2022b0c86fc50f0d90474ec0e2308e0c70b4",
        (
            "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAoHBwgHBgoICAgLCgoLDhgQDg0NDh0VFhEYIx8lJCIfIiEmKzcvJik0KSEiMEEx"
            "NDk7Pj4+JS5ESUM8SDc9Pjv/wgALCAALABMBAREA/8QAFwAAAwEAAAAAAAAAAAAAAAAAAwQFBv/aAAgBAQAAAAEqjJZev//E"
            "ABwQAAEDBQAAAAAAAAAAAAAAAAEDBCEAAhESIv/aAAgBAQABBQJ0OW92xLSQcooQvX//xAAaEAACAgMAAAAAAAAAAAAAAAAA"
            "AQIQEiEx/9oACAEBAAY/AotIwOG7/8QAGhABAAMAAwAAAAAAAAAAAAAAAQARITFRgf/aAAgBAQABPyFG9iahxL9eTbLIamiu"
            "4z//2gAIAQEAAAAQm//EABkQAQEBAQEBAAAAAAAAAAAAAAERADEhQf/aAAgBAQABPxCtPFh8Tr86526lTD8KrbczERImIoxv"
            "QPDh83//2Q=="
        ),
    ),
    "cmyk": (
        (11, 19),
        "1133ea07ef84a7b1086dabf734e55a1b366837d829bbd874337af84759f50ff1",
        (
            "/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwAKBwcIBwYKCAgICwoKCw4YEA4NDQ4dFRYRGCMfJSQiHyIhJis3LyYpNCkhIjBBMTQ5"
            "Oz4+PiUuRElDPEg3PT47/8AAFAgACwATBEMRAE0RAFkRAEsRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//E"
            "ALUQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2"
            "Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrC"
            "w8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+v/aAA4EQwBNAFkASwAAPwD0KKPT7Cx8u6uo7RUAG5pVTPry"
            "fpTPiOt3e2en3On2DXMcqO0rxxM5jI24yR0zk/lXBDS7i1EZt7MzM2eBGWxjHpXs1eI64Dq3iy6tbWY3FvHO6RyqwbeoY4OR"
            "wc461N8O9ZM9q2m3YIYrgKeCD/Ou30PQpJbWCRoijsisy7SNpx0Ior0HTvCES2EINuGO3klhmq2q+ET/AGnOViJBbINdNHoD"
            "hB+7Q8dyRRWV8S7mZdyiQgA4xXQeD3a68KOs58xSpBBHbFZtjBEhIVAMAfqaKwfAMEUl4HdAzeYeTXBWLtbeLZfJOz94RxXW"
            "abDHsUbe3+FFe0r8qhQBgD0r2GQ/N0B4HUD0rp/s0P8AzzWiv//Z"
        ),
    ),
}


def _jpeg(name: str) -> bytes:
    return base64.b64decode(STB_CASES[name][2])


@pytest.fixture(scope="module")
def dog() -> np.ndarray:
    return load_image_stb(DOG)


def _synth(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Smooth colour waves, a saturated rectangle and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack(
        [128 + 100 * np.sin(x / 7 + y / 11), 128 + 90 * np.cos(x / 5 - y / 9), 127.5 * x / max(w - 1, 1) + 127.5 * y / max(h - 1, 1)],
        axis=2,
    )
    img[h // 3 : h // 2 + 1, w // 4 : w // 2 + 1] = (250, 20, 30)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# -- exactly stb_image ----------------------------------------------------------------------


def test_dog_is_stb_image_exactly(dog):
    assert dog.shape == (576, 768, 3) and dog.dtype == np.uint8
    assert hashlib.sha256(dog.tobytes()).hexdigest() == DOG_STB_SHA256


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_letterbox_matches_darknet_input(dog, case):
    """Darknet's own letterboxed input: OpenCV's decode is off by up to 2.8/255 (mean 2.8e-4);
    the stb_image decode gives the tensor exactly (0 on all four cases), so only float32
    rounding of the resize could show here."""
    expected = np.load(GOLDEN / case / "expected.npz")["input"][0]
    assert (GOLDEN / case / "image.jpg").read_bytes() == DOG.read_bytes()
    h, w = expected.shape[1:]
    got = letterbox_image(to_tensor(dog), w, h).numpy()
    diff = np.abs(got - expected)
    assert diff.max() <= 1e-6, (case, float(diff.max()))


@pytest.mark.parametrize("name", sorted(STB_CASES))
def test_embedded_jpegs_are_stb_image_exactly(name):
    """4:2:0 (resample_row_hv_2), 4:2:2 (resample_row_h_2 and its right-edge quirk), 4:4:0 with
    restarts, 4:1:1 (generic) progressive with restarts, q=100 progressive (refinement scans),
    grey progressive, Adobe CMYK: every pixel as stb_image gives it."""
    shape, digest = STB_CASES[name][:2]
    img = decode_jpeg(_jpeg(name))
    assert img.shape == shape + (3,) and img.dtype == np.uint8
    assert hashlib.sha256(img.tobytes()).hexdigest() == digest


# -- close to libjpeg-turbo -----------------------------------------------------------------


def test_dog_close_to_opencv(dog):
    """Same file through libjpeg-turbo: a few grey levels on ~7% of the values (max 3 measured)."""
    cv = cv2.imdecode(np.fromfile(DOG, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    diff = np.abs(dog.astype(np.int16) - cv2.cvtColor(cv, cv2.COLOR_BGR2RGB).astype(np.int16))
    assert diff.max() <= 4
    assert diff.mean() < 0.2


def _pil_encode(img: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", **kw)
    return buf.getvalue()


def _close_to_pillow(data: bytes, shape: tuple, skip_cols: int = 0) -> None:
    ours = decode_jpeg(data)
    pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert ours.shape == pil.shape == shape
    diff = np.abs(ours.astype(np.int16) - pil.astype(np.int16))
    if skip_cols:
        diff = diff[:, :-skip_cols]
    # measured: at most 3 grey levels (libjpeg-turbo's islow IDCT and upsampling round differently)
    assert diff.max() <= 4, int(diff.max())
    assert diff.mean() < 0.5


@pytest.mark.parametrize("size", [(1, 1), (17, 9), (33, 31), (64, 48)])
@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("quality,progressive", [(10, False), (95, False), (90, True)])
def test_synthetic_pillow(size, subsampling, quality, progressive):
    w, h = size
    data = _pil_encode(_synth(w, h), quality=quality, subsampling=subsampling, progressive=progressive)
    # 4:2:2: stbi__resample_row_h_2 weights in[w-2] by 3 for output 2w-2 (libjpeg: in[w-1]),
    # so the last two columns may differ by tens of levels: compare the rest
    _close_to_pillow(data, (h, w, 3), skip_cols=2 if subsampling == 1 and w > 2 else 0)


@pytest.mark.parametrize("factor", [0x121111, 0x411111, 0x221111])
@pytest.mark.parametrize("restart", [1, 3])
@pytest.mark.parametrize("progressive", [0, 1])
def test_synthetic_opencv_restart_intervals(factor, restart, progressive):
    img = _synth(45, 29, seed=1)
    params = [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor,
              cv2.IMWRITE_JPEG_RST_INTERVAL, restart, cv2.IMWRITE_JPEG_PROGRESSIVE, progressive]
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    assert ok
    data = enc.tobytes()
    assert b"\xff\xdd" in data  # a DRI segment
    _close_to_pillow(data, (29, 45, 3))


@pytest.mark.parametrize("progressive", [0, 1])
def test_grey_is_replicated(progressive):
    grey = cv2.cvtColor(_synth(37, 21, seed=2), cv2.COLOR_RGB2GRAY)
    data = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 70, cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])[1].tobytes()
    img = decode_jpeg(data)
    assert img.shape == (21, 37, 3)
    assert (img[:, :, 0] == img[:, :, 1]).all() and (img[:, :, 0] == img[:, :, 2]).all()
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    assert np.abs(img[:, :, 0].astype(np.int16) - ref).max() <= 2


# -- errors ---------------------------------------------------------------------------------


def test_truncated_file_names_the_file(tmp_path):
    data = _pil_encode(_synth(40, 30), quality=90)
    path = tmp_path / "broken.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="broken.jpg"):
        load_image_stb(path)


def _one_block_grey(scan: bytes) -> bytes:
    """An 8x8 grey JPEG whose entropy-coded data is ``scan``."""
    data = _pil_encode(np.full((8, 8), 100, dtype=np.uint8), quality=90)
    sos = data.rfind(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    return data[:start] + scan + b"\xff\xd9"


def test_corrupt_scan_data_is_an_error(tmp_path):
    """0x28 = DC category 0 + end of block: the only block ends at once. Left-over zeros are
    skipped, but a stuffed 0xFF left over is read by stb_image as marker 0x00, an error."""
    assert (decode_jpeg(_one_block_grey(b"\x28\x00\x00\x00")) == 128).all()  # stb_image: 128 too
    path = tmp_path / "leftover.jpg"
    path.write_bytes(_one_block_grey(b"\x28" + b"\x00" * 8 + b"\xff\x00" + b"\x00" * 4))
    with pytest.raises(DataError, match="leftover.jpg.*unknown marker"):
        load_image_stb(path)


def test_not_a_jpeg(tmp_path):
    path = tmp_path / "image.png"
    _, enc = cv2.imencode(".png", _synth(8, 8))
    enc.tofile(path)
    with pytest.raises(DataError, match="image.png.*SOI"):
        load_image_stb(path)
    with pytest.raises(DataError, match="not found"):
        load_image_stb(tmp_path / "missing.jpg")
    with pytest.raises(DataError):
        decode_jpeg(b"")


def test_arithmetic_coding_is_unsupported():
    data = bytearray(_pil_encode(_synth(8, 8), quality=90))
    sof = data.find(b"\xff\xc0")
    data[sof + 1] = 0xC9  # SOF9: arithmetic-coded sequential
    with pytest.raises(DataError, match="arithmetic"):
        decode_jpeg(bytes(data), "a.jpg")
