"""Finds the memory-map bars in a PNG screenshot and prints, for each, its rows and
the pixels of the private and shared colours along its middle row:
    bar <first_row> <last_row> <private_pixels> <shared_pixels>
Standard library only (zlib): 8-bit RGB or RGBA, non-interlaced, as Chromium writes."""
import struct, sys, zlib

PRIVATE = (0x6a, 0x3d, 0x9a)
SHARED = (0xff, 0x7f, 0x00)

def pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and color in (2, 6) and interlace == 0, "unsupported PNG"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = previous[x]
            c = previous[x - channels] if x >= channels else 0
            if kind == 1: line[x] = (line[x] + a) & 255
            elif kind == 2: line[x] = (line[x] + b) & 255
            elif kind == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
        previous = line
    return rows

def close(pixel, color):
    return all(abs(p - c) <= 6 for p, c in zip(pixel, color))

rows = pixels(sys.argv[1])
# A bar row has a long stretch of the two colours; legend swatches are 12 pixels.
is_bar = [sum(1 for p in row if close(p, PRIVATE) or close(p, SHARED)) >= 200 for row in rows]
y = 0
while y < len(rows):
    if not is_bar[y]:
        y += 1
        continue
    start = y
    while y < len(rows) and is_bar[y]:
        y += 1
    middle = rows[(start + y - 1) // 2]
    print("bar", start, y - 1, sum(1 for p in middle if close(p, PRIVATE)), sum(1 for p in middle if close(p, SHARED)))
