import json, sys, warnings, collections
from pathlib import Path
from darknetpy.summary import shape_model, summary_json
from darknetpy.errors import DarknetError
root = Path(__file__).resolve().parents[2] / 'shared' / 'darknet-cfg'; exp = json.load(open(root/'expected.json'))
ok = 0; bad = collections.Counter(); only = sys.argv[1:] 
for name, e in exp.items():
    if only and not any(o in name for o in only): continue
    flavor = 'pjreddie' if name.startswith('pjreddie/') else 'alexeyab'
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            m = shape_model(root/name, flavor)
        s = summary_json(m)
    except DarknetError as err:
        msg = str(err)
        if e['darknet'] != 'ok': print('REJECTED-OK', name, '|', msg[:150]); continue
        print('ERR', name, '|', msg[:200]); bad[msg.split(': ')[-1][:60]] += 1; continue
    except Exception as err:
        print('CRASH', name, type(err).__name__, err); bad['crash']+=1; continue
    if e['darknet'] != 'ok': print('BUILT (darknet rejected)', name); continue
    got = [[l['type'], l['out_c'], l['out_h'], l['out_w']] for l in s['layers']]
    if got != e['layers']:
        diff = [(i, g, x) for i, (g, x) in enumerate(zip(got, e['layers'])) if g != x][:3]
        print('SHAPE', name, len(got), len(e['layers']), diff); continue
    if s['weights_bytes'] != e['weights_bytes']:
        print('BYTES', name, s['weights_bytes'], e['weights_bytes'], s['weights_bytes']-e['weights_bytes']); continue
    ok += 1
print('ok', ok, 'of', sum(1 for v in exp.values() if v['darknet']=='ok'))
